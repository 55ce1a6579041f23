//! Tests of the embedded dependency list reader: synthetic ELF files with hostile
//! `.dep-v0` sections, and the real `cargo auditable` test plugin when it is built.

use std::path::PathBuf;

use miniz_oxide::deflate::compress_to_vec_zlib;

use super::*;
use crate::advisories::test_support::auditable_test_binary;

/// A minimal little-endian ELF64 file: a null section, `.shstrtab` and, when given,
/// a `.dep-v0` section holding `data` whose header declares `declared` bytes.
fn elf(dep: Option<(&[u8], u64)>) -> Vec<u8> {
    let names = b"\0.shstrtab\0.dep-v0\0";
    let mut out = vec![0u8; 64];
    let names_at = out.len();
    out.extend_from_slice(names);
    let dep_at = out.len();
    if let Some((data, _)) = dep {
        out.extend_from_slice(data);
    }
    while !out.len().is_multiple_of(8) {
        out.push(0);
    }
    let shoff = out.len();
    out.extend_from_slice(&[0u8; 64]);
    out.extend_from_slice(&section_header(1, 3, names_at, names.len() as u64));
    if let Some((_, declared)) = dep {
        out.extend_from_slice(&section_header(11, 1, dep_at, declared));
    }
    let shnum: u16 = if dep.is_some() { 3 } else { 2 };
    out[0..4].copy_from_slice(b"\x7fELF");
    out[4] = 2; // 64-bit
    out[5] = 1; // little-endian
    out[6] = 1; // version
    out[16..18].copy_from_slice(&2u16.to_le_bytes()); // ET_EXEC
    out[18..20].copy_from_slice(&62u16.to_le_bytes()); // x86-64
    out[20..24].copy_from_slice(&1u32.to_le_bytes());
    out[40..48].copy_from_slice(&(shoff as u64).to_le_bytes());
    out[52..54].copy_from_slice(&64u16.to_le_bytes());
    out[54..56].copy_from_slice(&56u16.to_le_bytes());
    out[58..60].copy_from_slice(&64u16.to_le_bytes());
    out[60..62].copy_from_slice(&shnum.to_le_bytes());
    out[62..64].copy_from_slice(&1u16.to_le_bytes()); // .shstrtab
    out
}

fn section_header(name: u32, kind: u32, offset: usize, size: u64) -> [u8; 64] {
    let mut h = [0u8; 64];
    h[0..4].copy_from_slice(&name.to_le_bytes());
    h[4..8].copy_from_slice(&kind.to_le_bytes());
    h[24..32].copy_from_slice(&(offset as u64).to_le_bytes());
    h[32..40].copy_from_slice(&size.to_le_bytes());
    h[48..56].copy_from_slice(&1u64.to_le_bytes());
    h
}

fn with_section(data: &[u8]) -> Vec<u8> {
    elf(Some((data, data.len() as u64)))
}

fn write(dir: &tempfile::TempDir, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

const LIST: &str = r#"{"packages":[
    {"name":"demo-plugin","version":"0.1.0","source":"local","root":true,"dependencies":[1,2,3]},
    {"name":"itoa","version":"1.0.19","source":"crates.io"},
    {"name":"cc","version":"1.2.0","source":"crates.io","kind":"build"},
    {"name":"forked","version":"0.3.0-beta.1","source":"git"}
]}"#;

#[test]
fn synthetic_section_lists_packages_with_source_kind_and_root() {
    let dir = tempfile::tempdir().unwrap();
    let bin = write(
        &dir,
        "p",
        &with_section(&compress_to_vec_zlib(LIST.as_bytes(), 6)),
    );
    let deps = rust_dependencies(&bin).unwrap();
    assert!(deps.is_known());
    let root = deps.root().unwrap();
    assert_eq!(
        (root.name.as_str(), &root.source),
        ("demo-plugin", &Source::Local)
    );
    let cc = deps.packages().iter().find(|p| p.name == "cc").unwrap();
    assert_eq!(cc.kind, DepKind::Build);
    let forked = deps.packages().iter().find(|p| p.name == "forked").unwrap();
    assert_eq!(
        (forked.version.as_str(), forked.kind),
        ("0.3.0-beta.1", DepKind::Runtime)
    );
    // Only crates.io packages are matched against advisories.
    let names: Vec<_> = deps.dependencies().into_iter().map(|d| d.name).collect();
    assert_eq!(names, ["cc", "itoa"]);
    assert!(
        deps.summary().starts_with("4 packages"),
        "{}",
        deps.summary()
    );
    // Stored as JSON by the daemon: the round trip keeps everything.
    let json = serde_json::to_string(&deps).unwrap();
    assert!(json.contains(r#""status":"embedded""#), "{json}");
    assert_eq!(serde_json::from_str::<RustDeps>(&json).unwrap(), deps);
}

#[test]
fn binary_without_the_section_says_none_embedded() {
    let dir = tempfile::tempdir().unwrap();
    let bin = write(&dir, "plain", &elf(None));
    let deps = rust_dependencies(&bin).unwrap();
    assert_eq!(deps, RustDeps::NoneEmbedded);
    assert!(deps.dependencies().is_empty());
    assert!(
        deps.summary().contains("dependencies unknown"),
        "{}",
        deps.summary()
    );
    assert_eq!(
        serde_json::to_string(&deps).unwrap(),
        r#"{"status":"none_embedded"}"#
    );
    // A real toolchain-built ELF (not built with cargo auditable).
    for real in ["/bin/true", "/usr/bin/true"] {
        if Path::new(real).exists() {
            assert_eq!(
                rust_dependencies(Path::new(real)).unwrap(),
                RustDeps::NoneEmbedded
            );
            return;
        }
    }
    eprintln!("SKIP the real-ELF half: neither /bin/true nor /usr/bin/true exists");
}

fn refusal(bytes: &[u8]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let bin = write(&dir, "hostile", bytes);
    let err = rust_dependencies(&bin).unwrap_err().to_string();
    assert!(
        err.contains(&bin.display().to_string()),
        "names the file: {err}"
    );
    err
}

#[test]
fn section_declaring_more_bytes_than_the_file_holds_is_refused() {
    let data = compress_to_vec_zlib(LIST.as_bytes(), 6);
    let err = refusal(&elf(Some((&data, 1 << 40))));
    assert!(err.contains("refused"), "{err}");
    assert!(err.to_lowercase().contains("end of file"), "{err}");
}

#[test]
fn bad_zlib_is_refused() {
    let err = refusal(&with_section(b"this is not a zlib stream at all"));
    assert!(err.contains("decompress"), "{err}");
    let mut truncated = compress_to_vec_zlib(LIST.as_bytes(), 6);
    truncated.truncate(truncated.len() / 2);
    let err = refusal(&with_section(&truncated));
    assert!(err.contains("decompress"), "{err}");
}

#[test]
fn zlib_bomb_stops_at_the_json_cap() {
    // 9 MiB of JSON whitespace compresses to a few KiB.
    let bomb = compress_to_vec_zlib(&vec![b' '; 9 * 1024 * 1024], 9);
    assert!(bomb.len() < 64 * 1024, "{}", bomb.len());
    let err = refusal(&with_section(&bomb));
    assert!(
        err.contains(&format!("inflates past {MAX_DEPS_JSON_BYTES} bytes")),
        "{err}"
    );
}

#[test]
fn caps_on_the_binary_and_the_compressed_section() {
    let dir = tempfile::tempdir().unwrap();
    let data = compress_to_vec_zlib(LIST.as_bytes(), 6);
    let bin = write(&dir, "p", &with_section(&data));
    let err = rust_dependencies_capped(&bin, 64, MAX_DEPS_JSON_BYTES).unwrap_err();
    assert!(
        matches!(err, DepsError::TooLarge { limit: 64, .. }),
        "{err}"
    );
    // A compressed section longer than the JSON cap is refused before inflating.
    let err = rust_dependencies_capped(&bin, MAX_BINARY_BYTES, 16).unwrap_err();
    assert!(err.to_string().contains("inflates past 16 bytes"), "{err}");
}

#[test]
fn malformed_lists_are_refused() {
    for (json, why) in [
        (r#"{"packages":[{"name":"a"}]}"#, "JSON"),
        (
            r#"{"packages":[{"name":"a","version":"1.0.0","source":"local","root":true},
                {"name":"b","version":"1.0.0","source":"local","root":true}]}"#,
            "JSON",
        ),
        (
            r#"{"packages":[{"name":"a","version":"x.y","source":"local","root":true}]}"#,
            "JSON",
        ),
    ] {
        let err = refusal(&with_section(&compress_to_vec_zlib(json.as_bytes(), 6)));
        assert!(err.contains(why), "{json}: {err}");
    }
    let err = refusal(b"#!/bin/sh\necho not an executable format\n");
    assert!(err.contains("Not an executable"), "{err}");
}

#[test]
fn symlinks_fifos_and_missing_files_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let bin = write(&dir, "p", &elf(None));
    let link = dir.path().join("link");
    std::os::unix::fs::symlink(&bin, &link).unwrap();
    let err = rust_dependencies(&link).unwrap_err();
    assert!(matches!(err, DepsError::Symlink { .. }), "{err}");
    let fifo = dir.path().join("fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
    let err = rust_dependencies(&fifo).unwrap_err();
    assert!(matches!(err, DepsError::NotRegular { .. }), "{err}");
    let err = rust_dependencies(&dir.path().join("absent")).unwrap_err();
    assert!(err.to_string().contains("absent"), "{err}");
}

#[test]
fn real_cargo_auditable_binary() {
    let Some(bin) = auditable_test_binary() else {
        return;
    };
    let deps = rust_dependencies(&bin).unwrap();
    let root = deps.root().expect("a root package");
    assert_eq!(root.name, "plexichat-e2e");
    assert_eq!(root.source, Source::Local);
    let sdk = deps
        .packages()
        .iter()
        .find(|p| p.name == "plexichat-plugin-sdk");
    assert_eq!(sdk.map(|p| &p.source), Some(&Source::Local));
    let itoa = deps.dependencies().into_iter().find(|d| d.name == "itoa");
    assert_eq!(
        itoa.map(|d| d.version),
        Some(crate::advisories::test_support::FIXTURE_ITOA_VERSION.to_string()),
        "the fixture advisory (tests/fixtures/advisory-db) targets this itoa; \
         if Cargo.lock moved it, move the fixture"
    );
    eprintln!("{}: {}", bin.display(), deps.summary());
}
