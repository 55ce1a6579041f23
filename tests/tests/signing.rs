//! Signed packages end to end: `plugin pack`, a signature made with `ssh-keygen -Y
//! sign`, publisher keys trusted by two admins, and every refusal with its reason.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::{Daemon, Settings};

/// The second admin (not root, so the socket is opened to everyone).
const SECOND_ADMIN: u32 = 65534;

fn daemon() -> Daemon {
    Daemon::start_with(Settings {
        admin_uids: vec![0, SECOND_ADMIN],
        socket_mode: "0666",
        require_signature: true,
        ..Settings::default()
    })
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// A publisher's key pair made by `ssh-keygen`, as an author makes one, in a
/// directory the second admin (not root) can read the public key from.
struct Publisher {
    key: PathBuf,
    _dir: tempfile::TempDir,
}

impl Publisher {
    fn new(_d: &Daemon, name: &str) -> Publisher {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("key dir");
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let key = dir.path().join(format!("key-{name}"));
        let out = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", name, "-f", s(&key)])
            .output()
            .expect("ssh-keygen");
        assert!(out.status.success(), "ssh-keygen: {out:?}");
        Publisher { key, _dir: dir }
    }

    fn public(&self) -> PathBuf {
        self.key.with_extension("pub")
    }

    fn fingerprint(&self) -> String {
        let out = Command::new("ssh-keygen")
            .args(["-l", "-E", "sha256", "-f", s(&self.public())])
            .output()
            .expect("ssh-keygen -l");
        let text = String::from_utf8_lossy(&out.stdout);
        text.split_whitespace()
            .nth(1)
            .expect("a fingerprint")
            .to_string()
    }

    /// `plexichat plugin contents PKG | ssh-keygen -Y sign -n plexichat-plugin`, into
    /// `PKG.sig`: the README's command line.
    fn sign(&self, d: &Daemon, package: &Path) -> PathBuf {
        self.sign_as(d, package, "plexichat-plugin", &sig_path(package))
    }

    fn sign_as(&self, d: &Daemon, package: &Path, namespace: &str, out: &Path) -> PathBuf {
        let contents = d.cli(&["plugin", "contents", s(package)]);
        contents.ok();
        let mut child = Command::new("ssh-keygen")
            .args(["-q", "-Y", "sign", "-n", namespace, "-f", s(&self.key)])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("ssh-keygen -Y sign");
        use std::io::Write;
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(contents.stdout.as_bytes())
            .expect("write the content list");
        let signed = child.wait_with_output().expect("ssh-keygen -Y sign");
        assert!(signed.status.success(), "ssh-keygen -Y sign: {signed:?}");
        std::fs::write(out, signed.stdout).expect("write the signature");
        out.to_path_buf()
    }
}

fn sig_path(package: &Path) -> PathBuf {
    let mut p = package.as_os_str().to_owned();
    p.push(".sig");
    PathBuf::from(p)
}

/// `plugin pack DIR -o OUT`.
fn pack(d: &Daemon, dir: &Path, out: &str) -> PathBuf {
    let out = d.root().join(out);
    d.cli(&["plugin", "pack", s(dir), "-o", s(&out)]).ok();
    out
}

/// Both admins add the key: the first proposes, the second trusts.
fn trust(d: &Daemon, p: &Publisher, publisher: &str, pattern: &str) {
    let public = p.public();
    let args = [
        "trust",
        "add-key",
        s(&public),
        "--name",
        publisher,
        "--plugins",
        pattern,
        "--comment",
        "vetted",
    ];
    let first = d.cli(&args);
    first.ok();
    assert!(
        first.stdout.contains("a second, different admin"),
        "{}",
        first.stdout
    );
    let second = d.cli_as(SECOND_ADMIN, &args);
    second.ok();
    assert!(second.stdout.contains("trusted"), "{}", second.stdout);
}

/// Asserts the install of `package` is refused with `why` and leaves nothing behind.
fn refused(d: &Daemon, args: &[&str], why: &str) {
    let out = d.cli(args);
    assert!(
        !out.status.success(),
        "{args:?} was accepted: {}",
        out.stdout
    );
    assert!(
        out.stderr.contains(why),
        "{args:?}: expected `{why}` in: {}",
        out.stderr
    );
    let plugins = d.cli(&["--output", "json", "plugin", "list"]).json();
    let names: Vec<&str> = plugins["plugins"]
        .as_array()
        .map(|a| a.iter().filter_map(|p| p["name"].as_str()).collect())
        .unwrap_or_default();
    if args[1] == "install" {
        assert!(names.is_empty(), "{args:?} left a plugin: {names:?}");
        let stored = d.root().join("state/plugins/hello");
        assert!(
            !stored.exists(),
            "{args:?} left files in {}",
            stored.display()
        );
    }
}

#[test]
fn a_package_signed_with_ssh_keygen_installs_once_two_admins_trust_its_key() {
    let d = daemon();
    let dir = d.hello_package();
    let pxp = pack(&d, &dir, "hello.pxp");
    // Deterministic: the same tree packs to the same bytes, whatever the clock says.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let again = pack(&d, &dir, "hello-again.pxp");
    assert_eq!(std::fs::read(&pxp).unwrap(), std::fs::read(&again).unwrap());

    let acme = Publisher::new(&d, "acme");
    refused(
        &d,
        &["plugin", "install", s(&pxp)],
        "the package is unsigned",
    );
    acme.sign(&d, &pxp);
    refused(&d, &["plugin", "install", s(&pxp)], "untrusted key");

    let public = acme.public();
    let add = [
        "trust",
        "add-key",
        s(&public),
        "--name",
        "acme",
        "--plugins",
        "hello",
        "--comment",
        "vetted",
    ];
    d.cli(&add).ok();
    refused(&d, &["plugin", "install", s(&pxp)], "awaits a second admin");
    let same = d.cli(&add);
    assert!(
        !same.status.success() && same.stderr.contains("second, different admin"),
        "{}",
        same.stderr
    );
    d.cli_as(SECOND_ADMIN, &add).ok();

    let installed = d.cli(&["plugin", "install", s(&pxp)]);
    installed.ok();
    let fpr = acme.fingerprint();
    let show = d.cli(&["plugin", "show", "hello"]);
    assert!(
        show.stdout.contains(&format!("acme ({fpr})")),
        "{}",
        show.stdout
    );
    let pending = d.cli(&["plugin", "pending"]);
    assert!(
        pending.stdout.contains("SIGNED BY") && pending.stdout.contains(&fpr),
        "{}",
        pending.stdout
    );
    let status = d.cli(&["security", "plugin-status"]);
    assert!(status.stdout.contains(&fpr), "{}", status.stdout);
    let json = d
        .cli(&["--output", "json", "plugin", "show", "hello"])
        .json();
    assert_eq!(json["summary"]["signer"]["publisher"], "acme");
    assert_eq!(
        json["summary"]["signer"]["key_state"],
        "TRUST_STATE_TRUSTED"
    );

    let audit = d.audit(Some("hello"));
    let install = audit
        .iter()
        .find(|r| r["action"] == "plugin.install" && r["outcome"] == "OUTCOME_OK")
        .unwrap_or_else(|| panic!("no install record: {audit:?}"));
    let detail = install["detail"].to_string();
    assert!(detail.contains(&fpr) && detail.contains("acme"), "{detail}");
    let refusals: Vec<String> = audit
        .iter()
        .filter(|r| r["action"] == "plugin.install" && r["outcome"] == "OUTCOME_FAILED")
        .map(|r| r["detail"]["error"].to_string())
        .collect();
    assert_eq!(
        refusals.len(),
        3,
        "each refusal is audited with the plugin's name: {refusals:?} in {audit:?}"
    );
    assert!(
        refusals[0].contains("unsigned") && refusals[2].contains("second admin"),
        "{refusals:?}"
    );
    let keys = d.cli(&["trust", "list"]);
    assert!(
        keys.stdout.contains("trusted") && keys.stdout.contains("hello"),
        "{}",
        keys.stdout
    );
    let trust_audit = d.audit(None);
    for action in ["trust.key_proposed", "trust.key_added"] {
        assert!(
            trust_audit.iter().any(|r| r["action"] == action),
            "no {action}"
        );
    }

    // The plugin runs as any other: the signature changed nothing of its confinement.
    d.cli(&["plugin", "approve", "hello", "--comment", "ok"])
        .ok();
    d.cli(&["plugin", "enable", "hello"]).ok();
    d.wait_running("hello");
}

#[test]
fn each_bad_signature_is_refused_with_its_reason_and_nothing_is_stored() {
    let d = daemon();
    let (acme, stranger, narrow, revoked) = (
        Publisher::new(&d, "acme"),
        Publisher::new(&d, "stranger"),
        Publisher::new(&d, "narrow"),
        Publisher::new(&d, "gone"),
    );
    trust(&d, &acme, "acme", "*");
    trust(&d, &narrow, "narrow", "other-*");
    trust(&d, &revoked, "gone", "*");
    d.cli(&[
        "trust",
        "revoke",
        &revoked.fingerprint(),
        "--comment",
        "leaked",
    ])
    .ok();

    let dir = d.hello_package();
    let pxp = pack(&d, &dir, "hello.pxp");
    let install = ["plugin", "install", s(&pxp)];

    // A tampered byte: the entry binary changed after the content list was signed.
    acme.sign(&d, &pxp);
    let mut bin = std::fs::read(dir.join("hello")).unwrap();
    let last = bin.len() - 1;
    bin[last] ^= 0xff;
    std::fs::write(dir.join("hello"), &bin).unwrap();
    let tampered = pack(&d, &dir, "tampered.pxp");
    std::fs::copy(sig_path(&pxp), sig_path(&tampered)).unwrap();
    refused(&d, &["plugin", "install", s(&tampered)], "does not verify");
    // A byte of the archive itself flipped: the gzip or tar checks catch it first.
    let mut raw = std::fs::read(&pxp).unwrap();
    let mid = raw.len() / 2;
    raw[mid] ^= 0x55;
    let flipped = d.root().join("flipped.pxp");
    std::fs::write(&flipped, raw).unwrap();
    std::fs::copy(sig_path(&pxp), sig_path(&flipped)).unwrap();
    // Which check fails depends on the byte; that one does, and nothing is stored.
    refused(&d, &["plugin", "install", s(&flipped)], "");

    stranger.sign(&d, &pxp);
    refused(
        &d,
        &install,
        &format!("untrusted key {}", stranger.fingerprint()),
    );
    narrow.sign(&d, &pxp);
    refused(
        &d,
        &install,
        "trusted only for plugins matching `other-*`, not `hello`",
    );
    revoked.sign(&d, &pxp);
    refused(&d, &install, "REVOKED (leaked)");
    let other_ns = d.root().join("git.sig");
    acme.sign_as(&d, &pxp, "git", &other_ns);
    refused(
        &d,
        &["plugin", "install", s(&pxp), "--signature", s(&other_ns)],
        "namespace `git`",
    );
    // And the good case, on the same package.
    acme.sign(&d, &pxp);
    d.cli(&install).ok();
    let public = revoked.public();
    let re_add = d.cli(&[
        "trust",
        "add-key",
        s(&public),
        "--name",
        "gone",
        "--comment",
        "again",
    ]);
    assert!(
        re_add.stderr.contains("never trusted again"),
        "{}",
        re_add.stderr
    );
}

#[test]
fn an_update_keeps_its_publisher_and_a_revoked_key_flags_what_it_signed() {
    let d = daemon();
    let (acme, acme_new, evil) = (
        Publisher::new(&d, "acme"),
        Publisher::new(&d, "acme-rotated"),
        Publisher::new(&d, "evil"),
    );
    trust(&d, &acme, "acme", "*");
    trust(&d, &acme_new, "acme", "*");
    trust(&d, &evil, "evil", "*");
    let dir = d.hello_package();
    let v1 = pack(&d, &dir, "v1.pxp");
    acme.sign(&d, &v1);
    d.cli(&["plugin", "install", s(&v1)]).ok();

    let manifest = std::fs::read_to_string(dir.join("plugin.toml")).unwrap();
    let bumped = manifest.replacen("version = \"0.1.0\"", "version = \"0.2.0\"", 1);
    assert_ne!(
        bumped, manifest,
        "the hello manifest's version moved: {manifest}"
    );
    std::fs::write(dir.join("plugin.toml"), bumped).unwrap();
    let v2 = pack(&d, &dir, "v2.pxp");
    evil.sign(&d, &v2);
    refused(
        &d,
        &["plugin", "update", "hello", s(&v2)],
        "same publisher (key continuity)",
    );
    let shown = d
        .cli(&["--output", "json", "plugin", "show", "hello"])
        .json();
    assert_eq!(
        shown["summary"]["version"], "0.1.0",
        "the refused update changed the plugin"
    );
    // The same publisher's rotated key continues the line.
    acme_new.sign(&d, &v2);
    d.cli(&["plugin", "update", "hello", s(&v2)]).ok();
    let shown = d
        .cli(&["--output", "json", "plugin", "show", "hello"])
        .json();
    assert_eq!(
        shown["summary"]["signer"]["fingerprint"],
        acme_new.fingerprint().as_str()
    );

    let revoke = d.cli(&[
        "trust",
        "revoke",
        &acme_new.fingerprint(),
        "--comment",
        "laptop stolen",
    ]);
    revoke.ok();
    assert!(
        revoke.stdout.contains("flagged") && revoke.stdout.contains("hello"),
        "{}",
        revoke.stdout
    );
    let status = d.cli(&["security", "plugin-status"]);
    assert!(status.stdout.contains("KEY REVOKED"), "{}", status.stdout);
    let alerts = d.cli(&["--output", "json", "security", "alerts"]).json();
    assert!(
        alerts.to_string().contains("signing_key_revoked"),
        "{alerts}"
    );
    let keys = d.cli(&["--output", "json", "trust", "list"]).json();
    let listed = keys["keys"].as_array().cloned().unwrap_or_default();
    let gone = listed
        .iter()
        .find(|k| k["fingerprint"] == acme_new.fingerprint().as_str())
        .expect("the revoked key is still listed");
    assert_eq!(gone["state"], "TRUST_STATE_REVOKED");
    assert_eq!(gone["signed_plugins"][0], "hello");
    assert_eq!(gone["end_comment"], "laptop stolen");
}

/// Archives no `plugin pack` would write, made with Python's tarfile: each refused by
/// the daemon, naming the member, with nothing stored.
#[test]
fn hostile_archives_are_refused_by_the_daemon_naming_the_member() {
    let d = Daemon::start_with(Settings::default());
    let script = r#"
import io, sys, tarfile
out, case = sys.argv[1], sys.argv[2]
def member(t, name, data=b"", kind=tarfile.REGTYPE, **kw):
    i = tarfile.TarInfo(name); i.type = kind; i.size = len(data) if kind == tarfile.REGTYPE else 0
    i.mode = 0o644
    for k, v in kw.items(): setattr(i, k, v)
    t.addfile(i, io.BytesIO(data) if kind == tarfile.REGTYPE else None)
with tarfile.open(out, "w:gz", format=tarfile.USTAR_FORMAT) as t:
    member(t, ".plexichat/contents", b"plexichat-package-contents 1\n")
    member(t, "plugin.toml", b'name = "x"\nversion = "1.0.0"\nentry = "x"\n')
    if case == "absolute": member(t, "/etc/cron.d/x", b"* * * * * root sh")
    if case == "dotdot": member(t, "../../etc/x", b"x")
    if case == "symlink": member(t, "x", kind=tarfile.SYMTYPE, linkname="/etc/shadow")
    if case == "hardlink": member(t, "x", kind=tarfile.LNKTYPE, linkname="plugin.toml")
    if case == "device": member(t, "x", kind=tarfile.CHRTYPE, devmajor=1, devminor=3)
    if case == "duplicate": member(t, "plugin.toml", b"again")
    if case == "oversized":
        i = tarfile.TarInfo("x"); i.size = 300 * 1024 * 1024; i.mode = 0o644
        t.fileobj.write(i.tobuf(tarfile.USTAR_FORMAT))
"#;
    for (case, why) in [
        ("absolute", "is absolute"),
        ("dotdot", "`..`"),
        ("symlink", "a symbolic link"),
        ("hardlink", "a hard link"),
        ("device", "a device node"),
        ("duplicate", "sent twice"),
        ("oversized", "total more than"),
    ] {
        let out = d.root().join(format!("{case}.pxp"));
        let made = Command::new("python3")
            .args(["-c", script, s(&out), case])
            .output()
            .expect("python3");
        assert!(made.status.success(), "{case}: {made:?}");
        let r = d.cli(&["plugin", "install", s(&out)]);
        assert!(!r.status.success(), "{case} was installed");
        assert!(
            r.stderr.contains(why),
            "{case}: expected `{why}` in {}",
            r.stderr
        );
        let listed = d.cli(&["plugin", "list"]);
        assert!(
            listed.stdout.contains("no plugins installed"),
            "{case}: {}",
            listed.stdout
        );
        let staged: Vec<_> = std::fs::read_dir(d.root().join("state/plugins"))
            .map(|r| r.flatten().map(|e| e.file_name()).collect())
            .unwrap_or_default();
        assert!(staged.is_empty(), "{case} left {staged:?}");
    }
    // A bomb: 400 MiB of zeros in 400 KiB of gzip. A zero block ends a tar stream, so
    // it is refused at its first block, never expanded.
    let bomb = d.root().join("bomb.pxp");
    let zeros = Command::new("python3")
        .args([
            "-c",
            "import gzip,sys\nwith gzip.open(sys.argv[1],'wb',9) as f:\n  for _ in range(400): f.write(bytes(1<<20))",
            s(&bomb),
        ])
        .output()
        .expect("python3");
    assert!(zeros.status.success());
    assert!(std::fs::metadata(&bomb).unwrap().len() < 2 << 20);
    let started = std::time::Instant::now();
    let r = d.cli(&["plugin", "install", s(&bomb)]);
    assert!(!r.status.success(), "the bomb was installed");
    assert!(r.stderr.contains("no content list"), "{}", r.stderr);
    println!(
        "the bomb was refused in {:?}: {}",
        started.elapsed(),
        r.stderr.trim()
    );
    // And the allowed case on the same daemon: what `plugin pack` writes installs.
    let good = pack(&d, &d.hello_package(), "good.pxp");
    d.cli(&["plugin", "install", s(&good)]).ok();
}

/// The first key of a host: seeded by root with the supervisor stopped, refused while
/// one runs on the state directory (as `make run` and the service VM use it).
#[test]
fn the_first_key_is_bootstrapped_offline_and_never_while_a_supervisor_runs() {
    let mut d = daemon();
    let acme = Publisher::new(&d, "acme");
    let config = d.root().join("supervisor.toml");
    let bootstrap = || {
        Command::new(common::bin("plexichat-supervisor"))
            .args(["--config", s(&config), "--bootstrap-key", s(&acme.public())])
            .args(["--publisher", "acme", "--key-plugins", "hello"])
            .output()
            .expect("plexichat-supervisor --bootstrap-key")
    };
    let running = bootstrap();
    assert!(
        !running.status.success(),
        "bootstrapped under a running supervisor"
    );
    let why = String::from_utf8_lossy(&running.stderr);
    assert!(why.contains("needs the supervisor stopped"), "{why}");

    d.stop();
    let seeded = bootstrap();
    assert!(seeded.status.success(), "{seeded:?}");
    assert!(String::from_utf8_lossy(&seeded.stdout).contains(&acme.fingerprint()));
    d.restart();
    let pxp = pack(&d, &d.hello_package(), "hello.pxp");
    acme.sign(&d, &pxp);
    d.cli(&["plugin", "install", s(&pxp)]).ok();
    let keys = d.cli(&["trust", "list"]);
    assert!(
        keys.stdout.contains("root (offline bootstrap)"),
        "{}",
        keys.stdout
    );
    let added = d.audit(None);
    assert!(
        added
            .iter()
            .any(|r| r["action"] == "trust.key_added" && r["actor"] == "supervisor"),
        "{added:?}"
    );
}
