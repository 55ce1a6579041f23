//! End to end, the admin socket's standard gRPC surface through a stock grpcio client
//! with default channel options (`tests/stock_grpc/driver.py`): admin calls,
//! grpc.health.v1 following safe mode and the audit trail's fail-closed state,
//! reflection v1/v1alpha, and who may call them.

mod common;

use std::collections::{HashMap, VecDeque};
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

const ADMIN: &str = "plexichat.admin.v1.Admin";
const HEALTH: &str = "grpc.health.v1.Health";
/// A uid with the viewer role in `who_may_call...`; NOBODY has none.
const VIEWER: u32 = 65533;
const NOBODY: u32 = 65534;
/// How long a health change may take to reach a Watch on a loaded machine.
const PROPAGATION: Duration = Duration::from_secs(15);

/// One stock-client process: one channel, so one connection, for its whole life.
struct Py {
    child: Child,
    stdin: ChildStdin,
    answers: Receiver<Value>,
    watches: Receiver<Value>,
    /// Updates already read, per watched service, oldest first.
    seen: HashMap<String, VecDeque<Value>>,
    next: u64,
}

impl Py {
    fn start(socket: &std::path::Path, uid: Option<u32>) -> Py {
        Py::start_with(socket, uid, None)
    }

    /// `authority`: what the channel sends as :authority instead of grpcio's default.
    fn start_with(socket: &std::path::Path, uid: Option<u32>, authority: Option<&str>) -> Py {
        let driver = concat!(env!("CARGO_MANIFEST_DIR"), "/stock_grpc/driver.py");
        let mut cmd = Command::new("python3");
        cmd.arg(driver).arg(socket);
        if let Some(uid) = uid {
            cmd.arg("--uid").arg(uid.to_string());
        }
        if let Some(authority) = authority {
            cmd.arg("--authority").arg(authority);
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("python3 runs (the tests need grpcio; .ci/run installs it)");
        let stdin = child.stdin.take().expect("stdin");
        let stdout = child.stdout.take().expect("stdout");
        let (answer_tx, answers) = mpsc::channel();
        let (watch_tx, watches) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let v: Value = serde_json::from_str(&line)
                    .unwrap_or_else(|e| panic!("driver printed non-JSON ({e}): {line}"));
                let to = if v.get("watch").is_some() {
                    &watch_tx
                } else {
                    &answer_tx
                };
                if to.send(v).is_err() {
                    return;
                }
            }
        });
        let mut py = Py {
            child,
            stdin,
            answers,
            watches,
            seen: HashMap::new(),
            next: 0,
        };
        match py.answers.recv_timeout(Duration::from_secs(30)) {
            Ok(ready) => assert_eq!(ready["ready"], uid.unwrap_or(0), "{ready}"),
            Err(_) => py.died("start"),
        }
        py
    }

    /// Fails the test with the driver's stderr (an ImportError names a missing module).
    fn died(&mut self, doing: &str) -> ! {
        let _ = self.child.kill();
        let mut err = String::new();
        if let Some(mut e) = self.child.stderr.take() {
            let _ = std::io::Read::read_to_string(&mut e, &mut err);
        }
        panic!(
            "the grpcio driver did not answer `{doing}` (python3 with grpcio, \
             grpcio-health-checking and grpcio-reflection; .ci/run installs them):\n{err}"
        );
    }

    fn ask(&mut self, mut request: Value) -> Value {
        self.next += 1;
        request["id"] = self.next.into();
        let line = format!("{request}\n");
        if self.stdin.write_all(line.as_bytes()).is_err() {
            self.died(&line);
        }
        match self.answers.recv_timeout(Duration::from_secs(60)) {
            Ok(answer) => {
                assert_eq!(answer["id"], self.next, "{answer}");
                answer
            }
            Err(_) => self.died(&line),
        }
    }

    /// The status name, or the gRPC code it failed with.
    fn check(&mut self, service: &str) -> String {
        let a = self.ask(json!({"op": "check", "service": service}));
        a["status"]
            .as_str()
            .or(a["code"].as_str())
            .unwrap_or_else(|| panic!("{a}"))
            .to_string()
    }

    fn call(&mut self, method: &str, request: Value) -> Value {
        self.ask(json!({"op": "call", "method": method, "request": request}))
    }

    fn watch(&mut self, service: &str) {
        let a = self.ask(json!({"op": "watch", "service": service}));
        assert_eq!(a["watching"], service, "{a}");
    }

    /// Waits for the Watch of `service` to report `status` (taking its updates up to
    /// that one); returns how long it took.
    fn watch_sees(&mut self, service: &str, status: &str) -> Duration {
        let start = Instant::now();
        loop {
            while let Some(update) = self.seen.get_mut(service).and_then(VecDeque::pop_front) {
                assert!(update.get("code").is_none(), "the Watch failed: {update}");
                if update["status"] == status {
                    return start.elapsed();
                }
            }
            let left = PROPAGATION.saturating_sub(start.elapsed());
            let Ok(update) = self.watches.recv_timeout(left) else {
                panic!("the Watch of `{service}` did not report {status} within {PROPAGATION:?}")
            };
            let of = update["watch"].as_str().unwrap_or_default().to_string();
            self.seen.entry(of).or_default().push_back(update);
        }
    }
}

impl Drop for Py {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn services(py: &mut Py, version: &str) -> Vec<String> {
    let a = py.ask(json!({"op": "list_services", "version": version}));
    serde_json::from_value(a["services"].clone()).unwrap_or_else(|_| panic!("{a}"))
}

#[test]
fn a_stock_client_with_default_options_calls_the_api_reflects_and_sees_safe_mode() {
    let d = Daemon::start();
    let mut py = Py::start(&d.socket, None);

    // An admin RPC, encoded from descriptors fetched by reflection (as grpcurl does).
    let me = py.call("WhoAmI", json!({}));
    assert!(
        me["response"]["role"]
            .as_str()
            .is_some_and(|r| r.to_lowercase().contains("admin")),
        "{me}"
    );
    assert!(py.call("ListPlugins", json!({})).get("response").is_some());
    // grpc-core sent the socket path, percent-encoded, as :authority and it was let
    // through (vendor/h2): the case this test is about, not a client that avoids it.
    assert!(
        d.log().contains("ignoring malformed :authority"),
        "the stock client sent a well-formed :authority; is this still grpcio's default?"
    );
    // What grpc-java and grpcurl before 1.8.10 send (the path itself), an empty one,
    // and the usual workaround: all answered alike.
    let path = d.socket.to_str().expect("utf-8 path");
    for authority in [path, "", "localhost"] {
        let mut other = Py::start_with(&d.socket, None, Some(authority));
        let me = other.call("WhoAmI", json!({}));
        assert!(
            me.get("response").is_some(),
            "authority {authority:?}: {me}"
        );
        assert_eq!(other.check(""), "SERVING", "authority {authority:?}");
    }

    // Reflection: both versions list what the socket serves, and nothing else.
    let expected = [
        HEALTH,
        "grpc.reflection.v1.ServerReflection",
        "grpc.reflection.v1alpha.ServerReflection",
        ADMIN,
    ];
    for version in ["v1", "v1alpha"] {
        assert_eq!(services(&mut py, version), expected, "{version}");
        let found =
            py.ask(json!({"op": "file_containing_symbol", "version": version, "symbol": ADMIN}));
        let admin = found["files"]
            .as_array()
            .and_then(|f| f.iter().find(|f| f["package"] == "plexichat.admin.v1"))
            .unwrap_or_else(|| panic!("{version}: {found}"));
        assert_eq!(admin["services"], json!(["Admin"]), "{admin}");
        for method in ["WhoAmI", "SetSafeMode", "WatchNotifications"] {
            assert!(
                admin["methods"]
                    .as_array()
                    .is_some_and(|m| m.contains(&json!(method))),
                "{method} in {admin}"
            );
        }
    }
    let broker = py.ask(json!({"op": "file_containing_symbol", "version": "v1", "symbol": "plexichat.broker.v1.Broker"}));
    assert_eq!(broker["code"], "NOT_FOUND", "not served here: {broker}");

    // Health: overall and per service; an unknown service is NOT_FOUND.
    assert_eq!(py.check(""), "SERVING");
    assert_eq!(py.check(ADMIN), "SERVING");
    assert_eq!(py.check("grpc.reflection.v1.ServerReflection"), "SERVING");
    assert_eq!(py.check("no.such.Service"), "NOT_FOUND");
    py.watch("");
    py.watch(ADMIN);
    py.watch_sees("", "SERVING");
    py.watch_sees(ADMIN, "SERVING");

    // Safe mode on from the CLI: both Watches see NOT_SERVING; reading still works.
    let on = Instant::now();
    d.cli(&["emergency", "enable-safe-mode", "--comment", "health test"])
        .ok();
    let cli_took = on.elapsed();
    let seen_overall = py.watch_sees("", "NOT_SERVING");
    let seen_admin = py.watch_sees(ADMIN, "NOT_SERVING");
    assert_eq!(py.check(""), "NOT_SERVING");
    assert_eq!(py.check(ADMIN), "NOT_SERVING");
    assert_eq!(
        py.check("grpc.reflection.v1alpha.ServerReflection"),
        "SERVING"
    );
    assert!(py.call("WhoAmI", json!({})).get("response").is_some());
    assert_eq!(services(&mut py, "v1").len(), expected.len());

    // Off through the API from the same stock client: SERVING again.
    let off = py.call(
        "SetSafeMode",
        json!({"enabled": false, "comment": "health test over"}),
    );
    assert!(off.get("response").is_some(), "{off}");
    let seen_back = py.watch_sees("", "SERVING");
    py.watch_sees(ADMIN, "SERVING");
    assert_eq!(py.check(""), "SERVING");
    println!(
        "safe mode on: CLI {cli_took:?}, then Watch \"\" {seen_overall:?}, Watch Admin +{seen_admin:?}; \
         off: Watch \"\" {seen_back:?} after the API answered"
    );
}

#[test]
fn health_is_not_serving_while_the_audit_trail_is_fail_closed() {
    let d = Daemon::start();
    let mut py = Py::start(&d.socket, None);
    py.watch("");
    py.watch_sees("", "SERVING");

    // A second connection takes the store's write lock (a `sqlite3` left open in a
    // transaction); the audit writer's next commit fails after SQLite's busy wait.
    let store = rusqlite::Connection::open(d.root().join("state/store.db")).expect("store");
    store
        .busy_timeout(Duration::from_secs(10))
        .expect("busy timeout");
    store.execute_batch("BEGIN EXCLUSIVE").expect("lock");
    let locked = Instant::now();
    let publish = d.cli(&["event", "publish", "health.test", "{}"]);
    assert!(
        !publish.status.success() && publish.stderr.contains("audit trail cannot be written"),
        "a publish needs its record: {}",
        publish.stderr
    );
    let closed = py.watch_sees("", "NOT_SERVING");
    assert_eq!(py.check(ADMIN), "NOT_SERVING");
    // Health answers (it needs no record), and so does a read.
    assert!(py.call("WhoAmI", json!({})).get("response").is_some());
    let failing_after = locked.elapsed();

    store.execute_batch("ROLLBACK").expect("unlock");
    let unlocked = Instant::now();
    let reopened = py.watch_sees("", "SERVING");
    assert_eq!(py.check(ADMIN), "SERVING");
    d.cli(&["event", "publish", "health.test", "{}"]).ok();
    println!(
        "audit fail-closed: NOT_SERVING {closed:?} after the refused publish ({failing_after:?} \
         after the lock); SERVING {reopened:?} after the unlock ({:?} total)",
        unlocked.elapsed()
    );
}

#[test]
fn health_and_reflection_need_a_role_checked_at_accept_and_at_each_call() {
    let d = Daemon::start_with(Settings {
        viewer_uids: vec![VIEWER],
        // Both uids must reach the socket, so that the daemon is what refuses.
        socket_mode: "0666",
        ..Settings::default()
    });

    // A viewer may use them (and the admin API's reads).
    let mut viewer = Py::start(&d.socket, Some(VIEWER));
    assert_eq!(viewer.check(""), "SERVING");
    assert_eq!(services(&mut viewer, "v1").len(), 4);
    let me = viewer.call("WhoAmI", json!({}));
    assert!(
        me["response"]["role"]
            .as_str()
            .is_some_and(|r| r.to_lowercase().contains("viewer")),
        "{me}"
    );

    // No role: refused at accept with PERMISSION_DENIED, as for the admin API. A call
    // that reaches a refused connection after its 250 ms answer window (a loaded
    // machine) sees the close instead, whose GOAWAY carries the same reason.
    let mut nobody = Py::start(&d.socket, Some(NOBODY));
    for answer in [
        nobody.ask(json!({"op": "check", "service": ""})),
        nobody.ask(json!({"op": "list_services", "version": "v1alpha"})),
        nobody.call("WhoAmI", json!({})),
    ] {
        let goaway = answer["code"] == "UNAVAILABLE"
            && answer["details"]
                .as_str()
                .is_some_and(|m| m.contains("GOAWAY"));
        assert!(answer["code"] == "PERMISSION_DENIED" || goaway, "{answer}");
        assert!(
            answer["details"]
                .as_str()
                .is_some_and(|m| m.contains("has no role")),
            "{answer}"
        );
    }

    // The viewer loses its role by a reload while its connection stays open (a
    // Watch keeps it busy): the next call on that connection is refused by the
    // per-call check, and the refusal is audited like any admin RPC's.
    viewer.watch("");
    viewer.watch_sees("", "SERVING");
    let config = std::fs::read_to_string(&d.config).expect("config");
    let demoted = config.replace(
        &format!("viewer = {{ uids = [{VIEWER}] }}"),
        "viewer = { uids = [] }",
    );
    assert_ne!(
        config, demoted,
        "the viewer line is in the generated config"
    );
    std::fs::write(&d.config, demoted).expect("write config");
    d.cli(&["config", "reload"]).ok();
    for answer in [
        viewer.ask(json!({"op": "check", "service": ""})),
        viewer.ask(json!({"op": "list_services", "version": "v1"})),
    ] {
        assert_eq!(answer["code"], "PERMISSION_DENIED", "{answer}");
    }
    let refused: Vec<String> = d
        .audit(None)
        .into_iter()
        .filter(|r| r["action"] == "admin.refused")
        .map(|r| r["detail"].to_string())
        .collect();
    for service in [HEALTH, "grpc.reflection.v1"] {
        assert!(
            refused
                .iter()
                .any(|r| r.contains(service) && r.contains("has no role")),
            "{service} refusal audited: {refused:?}"
        );
    }
    // Root keeps its role throughout.
    let mut root = Py::start(&d.socket, None);
    assert_eq!(root.check(""), "SERVING");
}
