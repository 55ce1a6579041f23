//! End to end through the real daemon and a real plugin: the broker's Files service
//! (data dir without grants, scoped `file_read` grants, symlink and `..` refusals).

mod common;

use std::path::Path;

use common::*;

fn manifest(name: &str, read_scope: Option<&Path>) -> String {
    let mut m = format!("name = \"{name}\"\nversion = \"1.0.0\"\nentry = \"{name}\"\n");
    if let Some(scope) = read_scope {
        m.push_str(&format!(
            "\n[[permissions]]\nname = \"file_read\"\njustification = \"reads shared data\"\nscope = [\"{}\"]\n",
            scope.display()
        ));
    }
    m
}

fn install(d: &Daemon, name: &str, read_scope: Option<&Path>) {
    let pkg = d.package(
        name,
        &manifest(name, read_scope),
        &bin("files_plugin"),
        name,
    );
    d.cli(&["plugin", "install", pkg.to_str().unwrap()]).ok();
    if read_scope.is_some() {
        d.cli(&["plugin", "approve", name, "--comment", "shared data only"])
            .ok();
    }
    d.cli(&["plugin", "enable", name]).ok();
    d.wait_running(name);
}

fn invoke(d: &Daemon, plugin: &str, command: &str, args: &str) -> String {
    d.cli(&["plugin", "invoke", plugin, command, args])
        .ok()
        .stdout
        .trim()
        .to_string()
}

fn audited(d: &Daemon, plugin: &str, action: &str, outcome: &str) -> usize {
    d.audit_actions(Some(plugin))
        .iter()
        .filter(|(a, o)| a == action && o == outcome)
        .count()
}

#[test]
fn plugins_reach_files_only_through_the_broker_and_their_grants() {
    let d = Daemon::start();
    let shared = d.root().join("shared");
    std::fs::create_dir_all(shared.join("data")).unwrap();
    std::fs::create_dir_all(shared.join("database")).unwrap();
    std::fs::write(shared.join("data/x.txt"), "granted").unwrap();
    std::fs::write(shared.join("database/y.txt"), "not granted").unwrap();
    std::os::unix::fs::symlink("/etc/passwd", shared.join("data/link")).unwrap();
    let x = shared.join("data/x.txt");
    let y = shared.join("database/y.txt");

    // (a) The data dir needs no permission.
    install(&d, "files", None);
    assert_eq!(invoke(&d, "files", "write", "/data/notes.txt=hello"), "5");
    assert_eq!(invoke(&d, "files", "read", "/data/notes.txt"), "hello");
    assert_eq!(invoke(&d, "files", "list", "/data"), "notes.txt File 5");
    let on_host = d.root().join("state/data/files/notes.txt");
    assert_eq!(std::fs::read_to_string(&on_host).unwrap(), "hello");
    // Written by the root supervisor, yet owned like the data dir: the plugin keeps access.
    let owner = |p: &Path| std::os::unix::fs::MetadataExt::uid(&std::fs::metadata(p).unwrap());
    assert_eq!(owner(&on_host), owner(&d.root().join("state/data/files")));
    assert!(audited(&d, "files", "broker.file_write", "ok") >= 1);

    // (b) Outside the data dir, no grant: refused, naming permission and path, audited.
    let denied = invoke(&d, "files", "read", x.to_str().unwrap());
    assert!(denied.starts_with("ERR PermissionDenied"), "{denied}");
    assert!(
        denied.contains("file_read") && denied.contains("x.txt"),
        "{denied}"
    );
    assert_eq!(audited(&d, "files", "broker.file_read", "denied"), 1);

    // With a grant scoped to shared/data: that tree only, not its sibling shared/database.
    install(&d, "reader", Some(&shared.join("data")));
    assert_eq!(invoke(&d, "reader", "read", x.to_str().unwrap()), "granted");
    let sibling = invoke(&d, "reader", "read", y.to_str().unwrap());
    assert!(sibling.starts_with("ERR PermissionDenied"), "{sibling}");
    assert!(audited(&d, "reader", "broker.file_read", "ok") >= 1);
    assert_eq!(audited(&d, "reader", "broker.file_read", "denied"), 1);

    // (c) A symlink inside the granted tree is not followed.
    let link = invoke(
        &d,
        "reader",
        "read",
        shared.join("data/link").to_str().unwrap(),
    );
    assert!(link.starts_with("ERR PermissionDenied"), "{link}");
    assert!(link.contains("symlinks are not followed"), "{link}");

    // (d) `..` is refused before anything is resolved.
    let escape = format!("{}/../database/y.txt", shared.join("data").display());
    let dotdot = invoke(&d, "reader", "read", &escape);
    assert!(dotdot.starts_with("ERR InvalidArgument"), "{dotdot}");
    let data_escape = invoke(&d, "files", "read", "/data/../../store.db");
    assert!(
        data_escape.starts_with("ERR InvalidArgument"),
        "{data_escape}"
    );
}
