//! Just enough ELF to find a binary's program interpreter (PT_INTERP, the dynamic
//! loader), the only file besides the plugin itself Landlock lets it execute.

use std::fs::File;
use std::io;
use std::mem::ManuallyDrop;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;

const PT_INTERP: u32 = 3;
const MAX_PHNUM: u16 = 256;

fn bad(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("not a usable ELF64 binary: {what}"),
    )
}

/// The interpreter path of a 64-bit little-endian ELF, `None` for a static binary.
pub fn interpreter(binary: &OwnedFd) -> io::Result<Option<PathBuf>> {
    // SAFETY: borrowing the fd as a File without taking ownership (never closed here).
    let file = ManuallyDrop::new(unsafe { File::from_raw_fd(binary.as_raw_fd()) });
    let mut ehdr = [0u8; 64];
    file.read_exact_at(&mut ehdr, 0)?;
    if &ehdr[..4] != b"\x7fELF" || ehdr[4] != 2 || ehdr[5] != 1 {
        return Err(bad("magic, class or endianness"));
    }
    let u16_at = |b: &[u8], o: usize| u16::from_le_bytes([b[o], b[o + 1]]);
    let u32_at = |b: &[u8], o: usize| u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]);
    let u64_at = |b: &[u8], o: usize| {
        let mut a = [0u8; 8];
        a.copy_from_slice(&b[o..o + 8]);
        u64::from_le_bytes(a)
    };
    let phoff = u64_at(&ehdr, 32);
    let phentsize = u16_at(&ehdr, 54);
    let phnum = u16_at(&ehdr, 56);
    if phentsize < 56 || phnum > MAX_PHNUM {
        return Err(bad("program header table"));
    }
    let mut ph = vec![0u8; usize::from(phentsize)];
    for i in 0..u64::from(phnum) {
        file.read_exact_at(&mut ph, phoff + i * u64::from(phentsize))?;
        if u32_at(&ph, 0) != PT_INTERP {
            continue;
        }
        let (offset, size) = (u64_at(&ph, 8), u64_at(&ph, 32));
        if size == 0 || size > 4096 {
            return Err(bad("PT_INTERP size"));
        }
        let mut path = vec![0u8; size as usize];
        file.read_exact_at(&mut path, offset)?;
        let end = path.iter().position(|b| *b == 0).unwrap_or(path.len());
        let text = std::str::from_utf8(&path[..end]).map_err(|_| bad("PT_INTERP is not UTF-8"))?;
        if !text.starts_with('/') {
            return Err(bad("PT_INTERP is not absolute"));
        }
        return Ok(Some(PathBuf::from(text)));
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_loader_of_a_dynamic_binary_and_rejects_non_elf() {
        let exe = File::open(std::env::current_exe().unwrap()).unwrap();
        let interp = interpreter(&OwnedFd::from(exe))
            .unwrap()
            .expect("test binary is dynamic");
        assert!(
            interp.to_string_lossy().contains("ld-linux"),
            "{}",
            interp.display()
        );
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("x"), b"#!/bin/sh\necho hi\n").unwrap();
        let script = File::open(dir.path().join("x")).unwrap();
        assert!(interpreter(&OwnedFd::from(script)).is_err());
    }
}
