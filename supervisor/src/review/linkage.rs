//! The entry program's linkage as the reviewer reads it: ELF class and machine, its
//! program interpreter and the shared libraries it needs, or why that is unknown.

use std::io::Read;
use std::path::Path;

use object::read::elf::{Dyn, FileHeader, ProgramHeader};
use object::Endianness;

/// An entry program is read up to this size; a larger one is reported, not parsed.
const MAX_ENTRY_BYTES: u64 = 256 * 1024 * 1024;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Linkage {
    /// `ELF 64-bit x86-64`, `Python source`, or why it is unknown.
    pub format: String,
    pub static_binary: bool,
    pub interpreter: Option<String>,
    pub needed: Vec<String>,
}

/// Reads `path` (never following a symlink) and describes it.
pub fn linkage(path: &Path) -> Linkage {
    let unknown = |why: String| Linkage {
        format: why,
        ..Linkage::default()
    };
    if path.extension().is_some_and(|e| e == "py") {
        return unknown("Python source (run by the pinned interpreter)".into());
    }
    let data = match read_capped(path) {
        Ok(data) => data,
        Err(e) => return unknown(format!("unreadable: {e}")),
    };
    match elf64(&data) {
        Ok(l) => l,
        Err(e) => unknown(format!(
            "not a 64-bit ELF program the reviewer can read: {e}"
        )),
    }
}

fn read_capped(path: &Path) -> std::io::Result<Vec<u8>> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)?;
    let mut data = Vec::new();
    file.take(MAX_ENTRY_BYTES + 1).read_to_end(&mut data)?;
    if data.len() as u64 > MAX_ENTRY_BYTES {
        return Err(std::io::Error::other(format!(
            "larger than {MAX_ENTRY_BYTES} bytes"
        )));
    }
    Ok(data)
}

fn elf64(data: &[u8]) -> object::Result<Linkage> {
    let header = object::elf::FileHeader64::<Endianness>::parse(data)?;
    let endian = header.endian()?;
    let mut out = Linkage {
        format: format!("ELF 64-bit {}", machine(header.e_machine(endian))),
        ..Linkage::default()
    };
    let mut dynamic = false;
    for ph in header.program_headers(endian, data)? {
        if let Some(interp) = ph.interpreter(endian, data)? {
            out.interpreter = Some(String::from_utf8_lossy(interp).into_owned());
        }
        if ph.p_type(endian) == object::elf::PT_DYNAMIC {
            dynamic = true;
        }
    }
    let sections = header.sections(endian, data)?;
    // The index is the dynamic section's linked string table.
    if let Some((entries, strtab)) = sections.dynamic(endian, data)? {
        let strings = sections.strings(endian, data, strtab)?;
        for d in entries {
            if d.tag32(endian) == Some(object::elf::DT_NEEDED) {
                if let Ok(name) = d.string(endian, strings) {
                    out.needed.push(String::from_utf8_lossy(name).into_owned());
                }
            }
        }
    }
    out.static_binary = out.interpreter.is_none() && out.needed.is_empty() && !dynamic;
    Ok(out)
}

fn machine(m: u16) -> String {
    match m {
        object::elf::EM_X86_64 => "x86-64".into(),
        object::elf::EM_AARCH64 => "aarch64".into(),
        object::elf::EM_RISCV => "riscv".into(),
        other => format!("machine {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dynamic_binary_names_its_interpreter_and_libraries() {
        let l = linkage(Path::new("/bin/true"));
        assert!(l.format.starts_with("ELF 64-bit"), "{l:?}");
        assert!(
            l.interpreter
                .as_deref()
                .is_some_and(|i| i.contains("ld-linux")),
            "{l:?}"
        );
        assert!(l.needed.iter().any(|n| n.starts_with("libc.so")), "{l:?}");
        assert!(!l.static_binary);
        let dir = tempfile::tempdir().unwrap();
        let junk = dir.path().join("junk");
        std::fs::write(&junk, b"#!/bin/sh\necho hi\n").unwrap();
        assert!(
            linkage(&junk).format.starts_with("not a 64-bit ELF"),
            "{:?}",
            linkage(&junk)
        );
        assert!(linkage(Path::new("main.py"))
            .format
            .starts_with("Python source"));
        let link = dir.path().join("link");
        std::os::unix::fs::symlink("/bin/true", &link).unwrap();
        assert!(
            linkage(&link).format.starts_with("unreadable"),
            "{:?}",
            linkage(&link)
        );
        // Debian's busybox-static (the VM tests' initramfs needs it) is a static binary.
        if Path::new("/bin/busybox").exists() {
            let b = linkage(Path::new("/bin/busybox"));
            assert!(
                b.static_binary && b.needed.is_empty() && b.interpreter.is_none(),
                "{b:?}"
            );
        }
    }
}
