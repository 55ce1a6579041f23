//! The `.pxp` package archive: `plugin pack` writes it (caller's rights, deterministic)
//! and the daemon reads it into an upload's staging directory through the `Unpacker`.

// The format: a gzip stream of plain ustar members. The first member is the content
// list (`.plexichat/contents`), then every directory and file of the package, parents
// first, names in byte order; owner, group and times are zero, modes 0755 or 0644.
// Only ustar regular files and directories are read back: links, devices, FIFOs and
// the GNU/PAX extension headers are refused (an extension header is where a tar
// reader would otherwise buffer a long name of any length), so the reader's memory
// is bounded by one data chunk whatever the archive says.

use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Write};
use std::path::Path;

use broker_proto::admin::v1::package_chunk::Item;
use broker_proto::admin::v1::{EntryKind, PackageEnd, PackageEntry};
use sha2::{Digest, Sha256};

use super::contents::{self, installed_mode, MAX_CONTENTS_BYTES};
use super::pack::{self, PackError, Plan};
use super::tree::PinnedFile;
use super::unpack::{UnpackError, Unpacker};
use super::{clip, DATA_CHUNK_BYTES, MAX_PACKAGE_BYTES, MAX_PACKAGE_ENTRIES};
use crate::install::hex;

/// The archive's first member: the content list a publisher signs.
pub const CONTENTS_MEMBER: &str = ".plexichat/contents";
const RESERVED_DIR: &str = ".plexichat";
/// An archive (compressed) is at most this long.
pub const MAX_ARCHIVE_BYTES: u64 = MAX_PACKAGE_BYTES + 64 * 1024 * 1024;
/// What an archive may expand to: every file, a header and padding per entry, and the
/// content list. Past it the gzip stream is a decompression bomb.
const MAX_EXPANDED_BYTES: u64 =
    MAX_PACKAGE_BYTES + (MAX_PACKAGE_ENTRIES as u64 + 4) * 1024 + MAX_CONTENTS_BYTES as u64;

/// What `write` made.
#[derive(Debug)]
pub struct Written {
    /// The content list (also the archive's first member), for signing.
    pub contents: String,
    pub files: usize,
    pub bytes: u64,
}

/// Packs the directory `dir` into `out` (written beside it, then renamed into place):
/// the same walk and refusals as an upload, each file hashed, then archived.
pub fn write(dir: &Path, out: &Path) -> Result<Written, PackError> {
    let plan = pack::plan(dir)?;
    if let Some(e) = plan.entries.iter().find(|e| e.wire == RESERVED_DIR) {
        return Err(plan.entry_err(
            &e.rel,
            "is reserved: an archive keeps its content list there",
        ));
    }
    let files = hash_files(&plan)?;
    let text = contents::render(&files);
    let failed = |problem: String| PackError::Package {
        root: dir.display().to_string(),
        problem,
    };
    let tmp = out.with_extension("pxp.partial");
    let written = write_to(&plan, &files, &text, &tmp).and_then(|()| {
        fs::rename(&tmp, out).map_err(|e| failed(format!("renaming into {}: {e}", out.display())))
    });
    if written.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    written?;
    let (_, bytes) = plan.totals();
    Ok(Written {
        contents: text,
        files: files.len(),
        bytes,
    })
}

fn write_to(plan: &Plan, files: &[PinnedFile], text: &str, tmp: &Path) -> Result<(), PackError> {
    let failed = |e: io::Error| PackError::Package {
        root: plan.root().display().to_string(),
        problem: format!("writing {}: {e}", tmp.display()),
    };
    let file = File::create(tmp).map_err(failed)?;
    let gz = flate2::GzBuilder::new()
        .mtime(0)
        .write(BufWriter::new(file), flate2::Compression::best());
    let mut tar = tar::Builder::new(gz);
    let body = text.as_bytes();
    append(
        &mut tar,
        CONTENTS_MEMBER,
        Member::File(0o644, body.len() as u64),
        body,
    )
    .map_err(failed)?;
    for (e, pinned) in with_files(plan, files) {
        let Some(pinned) = pinned else {
            append(&mut tar, &format!("{}/", e.wire), Member::Dir, io::empty()).map_err(failed)?;
            continue;
        };
        let mut reader = Hashing::new(plan.open(e)?.take(e.size));
        append(
            &mut tar,
            &e.wire,
            Member::File(installed_mode(e.mode), e.size),
            &mut reader,
        )
        .map_err(|err| plan.entry_err(&e.rel, format!("cannot be archived: {err}")))?;
        if reader.read != e.size || reader.hex() != pinned.sha256 {
            return Err(plan.entry_err(&e.rel, "changed while the package was packed"));
        }
    }
    let gz = tar.into_inner().map_err(failed)?;
    let file = gz
        .finish()
        .and_then(|w| w.into_inner().map_err(io::IntoInnerError::into_error))
        .map_err(failed)?;
    file.sync_all().map_err(failed)
}

/// What one archive member is.
enum Member {
    Dir,
    /// Its mode and exact size.
    File(u32, u64),
}

/// Each planned entry with its hashed file (`None` for a directory).
fn with_files<'a>(
    plan: &'a Plan,
    files: &'a [PinnedFile],
) -> impl Iterator<Item = (&'a pack::Planned, Option<&'a PinnedFile>)> {
    let mut files = files.iter();
    plan.entries.iter().map(move |e| match e.kind {
        EntryKind::File => (e, files.next()),
        _ => (e, None),
    })
}

/// Every planned file with its SHA-256, in plan order.
fn hash_files(plan: &Plan) -> Result<Vec<PinnedFile>, PackError> {
    let mut out = Vec::new();
    for e in plan.entries.iter().filter(|e| e.kind == EntryKind::File) {
        let mut reader = Hashing::new(plan.open(e)?);
        io::copy(&mut reader, &mut io::sink())
            .map_err(|err| plan.entry_err(&e.rel, format!("cannot be read: {err}")))?;
        if reader.read != e.size {
            return Err(plan.entry_err(&e.rel, "changed size while the package was packed"));
        }
        out.push(PinnedFile {
            path: e.wire.clone(),
            mode: installed_mode(e.mode),
            size: e.size,
            sha256: reader.hex(),
        });
    }
    Ok(out)
}

fn append(
    tar: &mut tar::Builder<impl Write>,
    path: &str,
    member: Member,
    data: impl Read,
) -> io::Result<()> {
    let mut h = tar::Header::new_ustar();
    let (kind, mode, size) = match member {
        Member::Dir => (tar::EntryType::Directory, 0o755, 0),
        Member::File(mode, size) => (tar::EntryType::Regular, mode, size),
    };
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_size(size);
    h.set_mtime(0);
    h.set_uid(0);
    h.set_gid(0);
    h.set_username("")?;
    h.set_groupname("")?;
    // Sets the path (an error for one ustar cannot hold: over 255 bytes, or no `/`
    // to split a long one at) and the checksum.
    tar.append_data(&mut h, path, data)
}

/// A reader that hashes what passes through it.
struct Hashing<R> {
    inner: R,
    hash: Sha256,
    read: u64,
}

impl<R> Hashing<R> {
    fn new(inner: R) -> Self {
        Hashing {
            inner,
            hash: Sha256::new(),
            read: 0,
        }
    }

    fn hex(&self) -> String {
        hex(&self.hash.clone().finalize())
    }
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hash.update(&buf[..n]);
        self.read += n as u64;
        Ok(n)
    }
}

/// Reads an archive from `src` into `unpacker`, returning its content list. Refuses
/// (naming the member) anything but ustar regular files and directories, a first
/// member that is not the content list, a member under `.plexichat/` after it, and
/// a stream that expands past what a package can hold.
pub fn read(src: impl Read, unpacker: &mut Unpacker) -> Result<Vec<u8>, UnpackError> {
    read_capped(src, unpacker, MAX_EXPANDED_BYTES)
}

fn read_capped(src: impl Read, unpacker: &mut Unpacker, cap: u64) -> Result<Vec<u8>, UnpackError> {
    let expanded = Capped {
        inner: flate2::read::GzDecoder::new(src),
        left: cap,
    };
    let mut archive = tar::Archive::new(expanded);
    let mut entries = archive.entries().map_err(read_error)?.raw(true);
    let entries = &mut entries;
    let list = match entries.next() {
        None => return refused("the archive is empty: it has no content list"),
        Some(first) => {
            let mut first = first.map_err(read_error)?;
            let member = Member::of(&first)?;
            let path = member_path(&first, &member)?;
            read_contents(&mut first, &path, &member)?
        }
    };
    let (mut count, mut bytes) = (0u32, 0u64);
    for entry in entries {
        let mut entry = entry.map_err(read_error)?;
        let member = Member::of(&entry)?;
        let path = member_path(&entry, &member)?;
        if path == RESERVED_DIR || path.starts_with(".plexichat/") {
            return refused(format!(
                "member `{}` is under the reserved `.plexichat/`",
                clip(&path)
            ));
        }
        count += 1;
        let (kind, mode, size) = match member {
            Member::Dir => (EntryKind::Directory, 0o755, 0),
            Member::File(mode, size) => (EntryKind::File, mode, size),
        };
        unpacker.accept(Item::Entry(PackageEntry {
            path: path.clone(),
            kind: kind as i32,
            mode,
            size,
        }))?;
        bytes += copy_member(&mut entry, &path, size, unpacker)?;
    }
    // The end-of-archive blocks and the gzip trailer: reading to the end checks the
    // stream's CRC, within the same cap.
    io::copy(&mut archive.into_inner(), &mut io::sink()).map_err(read_error)?;
    unpacker.accept(Item::End(PackageEnd {
        entries: count,
        bytes,
    }))?;
    Ok(list)
}

/// Reads an archive upload (data messages, then the end) from `rx` into `unpacker`;
/// the whole stream must arrive, and its end must count the bytes that did.
pub fn read_stream(
    rx: tokio::sync::mpsc::Receiver<Item>,
    unpacker: &mut Unpacker,
) -> Result<Vec<u8>, UnpackError> {
    let mut src = Uploaded {
        rx,
        buf: Vec::new(),
        at: 0,
        received: 0,
        end: None,
    };
    let list = read(&mut src, unpacker)?;
    // What follows the tar end marker (gzip trailer, padding) is read and dropped, so
    // a stream cut short is still refused.
    io::copy(&mut src, &mut io::sink()).map_err(read_error)?;
    match src.end {
        Some(bytes) if bytes == src.received => Ok(list),
        Some(bytes) => refused(format!(
            "the archive's end counts {bytes} bytes, but {} arrived",
            src.received
        )),
        None => refused("the upload ended before the archive was complete; nothing was installed"),
    }
}

/// The archive bytes of an upload, as a reader.
struct Uploaded {
    rx: tokio::sync::mpsc::Receiver<Item>,
    buf: Vec<u8>,
    at: usize,
    received: u64,
    /// The byte count the end message gave, once it arrived.
    end: Option<u64>,
}

impl Read for Uploaded {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.at == self.buf.len() {
            if self.end.is_some() {
                return Ok(0);
            }
            match self.rx.blocking_recv() {
                None => return Ok(0),
                Some(Item::Data(d)) => {
                    self.received += d.len() as u64;
                    if self.received > MAX_ARCHIVE_BYTES {
                        return Err(io::Error::other(format!(
                            "the archive is longer than {MAX_ARCHIVE_BYTES} bytes"
                        )));
                    }
                    self.buf = d;
                    self.at = 0;
                }
                Some(Item::End(end)) => self.end = Some(end.bytes),
                Some(_) => {
                    return Err(io::Error::other(
                        "an archive upload carries only data messages after its header",
                    ))
                }
            }
        }
        let n = out.len().min(self.buf.len() - self.at);
        out[..n].copy_from_slice(&self.buf[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

fn refused<T>(why: impl Into<String>) -> Result<T, UnpackError> {
    Err(UnpackError::Refused(why.into()))
}

/// A broken archive (or the bomb cap) as a refusal naming it.
fn read_error(e: io::Error) -> UnpackError {
    UnpackError::Refused(format!("the archive cannot be read: {e}"))
}

impl Member {
    /// The member's kind, refusing every kind but a ustar file or directory.
    fn of<R: Read>(entry: &tar::Entry<'_, R>) -> Result<Member, UnpackError> {
        let h = entry.header();
        let path = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let what = match h.entry_type() {
            tar::EntryType::Regular => {
                let mode = h.mode().map_err(read_error)?;
                let size = h.size().map_err(read_error)?;
                return Ok(Member::File(installed_mode(mode), size));
            }
            tar::EntryType::Directory => return Ok(Member::Dir),
            tar::EntryType::Symlink => "a symbolic link".to_string(),
            tar::EntryType::Link => "a hard link".to_string(),
            tar::EntryType::Char | tar::EntryType::Block => "a device node".to_string(),
            tar::EntryType::Fifo => "a FIFO".to_string(),
            tar::EntryType::GNULongName
            | tar::EntryType::GNULongLink
            | tar::EntryType::GNUSparse
            | tar::EntryType::XHeader
            | tar::EntryType::XGlobalHeader => {
                "a GNU or PAX extension header (`plexichat plugin pack` writes plain ustar)"
                    .to_string()
            }
            other => format!("of tar type {:?}", other.as_byte() as char),
        };
        refused(format!(
            "member `{}` is {what}: a package may hold only regular files and directories",
            clip(&path)
        ))
    }
}

/// The member's path as an upload entry path (a directory's trailing `/` dropped);
/// the unpacker then applies the entry rules (no absolute path, no `..`...).
fn member_path<R: Read>(entry: &tar::Entry<'_, R>, member: &Member) -> Result<String, UnpackError> {
    let raw = entry.path_bytes();
    let path = std::str::from_utf8(&raw).map_err(|_| {
        UnpackError::Refused(format!(
            "member `{}` has a name that is not UTF-8",
            clip(&String::from_utf8_lossy(&raw))
        ))
    })?;
    let path = match member {
        Member::Dir => path.strip_suffix('/').unwrap_or(path),
        Member::File(..) => path,
    };
    // A refusal names the path; the unpacker re-checks every entry it is given.
    super::entry_path(path).map_err(|e| UnpackError::Refused(format!("archive member: {e}")))?;
    Ok(path.to_string())
}

fn read_contents<R: Read>(
    entry: &mut tar::Entry<'_, R>,
    path: &str,
    member: &Member,
) -> Result<Vec<u8>, UnpackError> {
    let size = match member {
        Member::File(_, size) if path == CONTENTS_MEMBER => *size,
        _ => {
            return refused(format!(
                "the archive's first member is `{}`, not its content list `{CONTENTS_MEMBER}` (make the archive with `plexichat plugin pack`)",
                clip(path)
            ))
        }
    };
    if size > MAX_CONTENTS_BYTES as u64 {
        return refused(format!(
            "the content list is {size} bytes, more than {MAX_CONTENTS_BYTES}"
        ));
    }
    let mut list = Vec::with_capacity(size as usize);
    entry.read_to_end(&mut list).map_err(read_error)?;
    Ok(list)
}

/// Passes a file member's bytes to the unpacker a chunk at a time.
fn copy_member<R: Read>(
    entry: &mut tar::Entry<'_, R>,
    path: &str,
    size: u64,
    unpacker: &mut Unpacker,
) -> Result<u64, UnpackError> {
    let mut buf = vec![0u8; DATA_CHUNK_BYTES.min(size as usize).max(1)];
    let mut copied = 0u64;
    loop {
        let n = entry.read(&mut buf).map_err(|e| {
            UnpackError::Refused(format!("member `{}` cannot be read: {e}", clip(path)))
        })?;
        if n == 0 {
            break;
        }
        copied += n as u64;
        unpacker.accept(Item::Data(buf[..n].to_vec()))?;
    }
    if copied != size {
        return refused(format!(
            "member `{}` is truncated: {copied} of {size} bytes",
            clip(path)
        ));
    }
    Ok(copied)
}

/// A reader that fails once more than `left` bytes passed: the decompression cap.
struct Capped<R> {
    inner: R,
    left: u64,
}

impl<R: Read> Read for Capped<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.left = self.left.checked_sub(n as u64).ok_or_else(|| {
            io::Error::other("it expands to more than a package can hold (a decompression bomb?)")
        })?;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn package() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("plugin.toml"), "name = \"p\"\n").unwrap();
        fs::create_dir(dir.path().join("lib")).unwrap();
        fs::write(
            dir.path().join("lib/data"),
            vec![7u8; 3 * DATA_CHUNK_BYTES + 5],
        )
        .unwrap();
        fs::write(dir.path().join("run"), b"\x7fELF").unwrap();
        fs::set_permissions(dir.path().join("run"), fs::Permissions::from_mode(0o700)).unwrap();
        dir
    }

    fn unpack(bytes: &[u8]) -> (tempfile::TempDir, Result<Vec<u8>, UnpackError>) {
        let dest = tempfile::tempdir().unwrap();
        let mut u = Unpacker::new(dest.path());
        let got = read(bytes, &mut u).and_then(|list| u.finish().map(|()| list));
        (dest, got)
    }

    fn refusal(bytes: &[u8]) -> String {
        match unpack(bytes).1 {
            Err(UnpackError::Refused(why)) => why,
            other => panic!("not refused: {other:?}"),
        }
    }

    #[test]
    fn an_archive_is_deterministic_and_reads_back_to_its_content_list() {
        let src = package();
        let out = tempfile::tempdir().unwrap();
        let (a, b) = (out.path().join("a.pxp"), out.path().join("b.pxp"));
        let written = write(src.path(), &a).unwrap();
        assert_eq!(written.files, 3);
        // Times, owners and the walk's timing do not change a byte.
        std::thread::sleep(std::time::Duration::from_millis(20));
        fs::write(src.path().join("plugin.toml"), "name = \"p\"\n").unwrap();
        write(src.path(), &b).unwrap();
        assert_eq!(fs::read(&a).unwrap(), fs::read(&b).unwrap());
        assert!(!out.path().join("a.pxp.partial").exists());

        let (dest, got) = unpack(&fs::read(&a).unwrap());
        let list = got.unwrap();
        assert_eq!(list, written.contents.as_bytes());
        let pinned = super::super::tree::pin(dest.path()).unwrap();
        assert_eq!(contents::mismatch(&list, &pinned.files), None);
        let mode = fs::metadata(dest.path().join("run"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o755);
    }

    #[test]
    fn a_reserved_name_is_not_packed() {
        let src = package();
        fs::create_dir(src.path().join(".plexichat")).unwrap();
        let out = tempfile::tempdir().unwrap();
        let e = write(src.path(), &out.path().join("x.pxp")).unwrap_err();
        assert!(e.to_string().contains("reserved"), "{e}");
    }

    /// A member with a raw name (bypassing the tar crate's own path checks).
    fn raw(h: &mut tar::Header, name: &[u8]) {
        let old = h.as_old_mut();
        old.name = [0; 100];
        old.name[..name.len()].copy_from_slice(name);
        h.set_cksum();
    }

    /// An archive builder holding an (empty) content list as its first member.
    fn with_contents() -> tar::Builder<flate2::write::GzEncoder<Vec<u8>>> {
        let mut tar = tar::Builder::new(flate2::write::GzEncoder::new(
            Vec::new(),
            flate2::Compression::fast(),
        ));
        let list = contents::HEADER.as_bytes();
        let mut h = tar::Header::new_ustar();
        h.set_size(list.len() as u64);
        h.set_mode(0o644);
        raw(&mut h, CONTENTS_MEMBER.as_bytes());
        tar.append(&h, list).unwrap();
        tar
    }

    /// An archive of the content list and then `members`.
    fn hostile(members: &[(&[u8], tar::EntryType, &[u8])]) -> Vec<u8> {
        let mut tar = with_contents();
        for (name, kind, data) in members {
            let mut h = tar::Header::new_ustar();
            h.set_entry_type(*kind);
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            raw(&mut h, name);
            tar.append(&h, *data).unwrap();
        }
        tar.into_inner().unwrap().finish().unwrap()
    }

    #[test]
    fn hostile_archives_are_refused_by_name() {
        use tar::EntryType::*;
        for (members, why) in [
            (
                vec![(&b"/etc/passwd"[..], Regular, &b"x"[..])],
                "is absolute",
            ),
            (vec![(b"../x", Regular, b"x")], "`..`"),
            (vec![(b"a/../../x", Regular, b"x")], "`..`"),
            (vec![(b"l", Symlink, b"")], "a symbolic link"),
            (vec![(b"h", Link, b"")], "a hard link"),
            (vec![(b"d", Char, b"")], "a device node"),
            (vec![(b"f", Fifo, b"")], "a FIFO"),
            (
                vec![(b"././@LongLink", GNULongName, b"aaaa")],
                "extension header",
            ),
            (
                vec![(b"pax", XHeader, b"30 path=/etc/shadow\n")],
                "extension header",
            ),
            (
                vec![(b"x", Regular, b"1"), (b"x", Regular, b"2")],
                "sent twice",
            ),
            (vec![(b".plexichat/contents", Regular, b"x")], "reserved"),
            (vec![(b"a\nb", Regular, b"x")], "control character"),
        ] {
            let got = refusal(&hostile(&members));
            assert!(got.contains(why), "{members:?}: {got}");
        }
        // Not the content list first.
        let mut tar = tar::Builder::new(flate2::write::GzEncoder::new(
            Vec::new(),
            flate2::Compression::fast(),
        ));
        let mut h = tar::Header::new_ustar();
        h.set_size(1);
        h.set_mode(0o644);
        raw(&mut h, b"plugin.toml");
        tar.append(&h, &b"x"[..]).unwrap();
        let first = tar.into_inner().unwrap().finish().unwrap();
        assert!(refusal(&first).contains("not its content list"));
        assert!(refusal(b"not gzip at all").contains("cannot be read"));
        // Truncated mid-member.
        let whole = hostile(&[(b"big", Regular, &[1u8; 4096])]);
        assert!(refusal(&whole[..whole.len() / 2]).contains("cannot be read"));
    }

    #[test]
    fn an_oversized_member_or_a_bomb_is_refused_before_it_is_written() {
        // A header that declares more than a package may hold: refused at the entry.
        let mut tar = with_contents();
        let mut h = tar::Header::new_ustar();
        h.set_size(MAX_PACKAGE_BYTES + 1);
        h.set_mode(0o644);
        raw(&mut h, b"huge");
        tar.get_mut().write_all(h.as_bytes()).unwrap();
        let bytes = tar.into_inner().unwrap().finish().unwrap();
        assert!(
            refusal(&bytes).contains("total more than"),
            "{}",
            refusal(&bytes)
        );

        // A gzip stream that expands past the cap: 4 MiB of one member against 1 MiB.
        let bomb = hostile(&[(b"zeros", tar::EntryType::Regular, &vec![0u8; 4 << 20])]);
        assert!(bomb.len() < 64 * 1024, "{} bytes compressed", bomb.len());
        let dest = tempfile::tempdir().unwrap();
        let mut u = Unpacker::new(dest.path());
        match read_capped(&bomb[..], &mut u, 1 << 20) {
            Err(UnpackError::Refused(why)) => assert!(why.contains("decompression bomb"), "{why}"),
            other => panic!("{other:?}"),
        }
    }
}
