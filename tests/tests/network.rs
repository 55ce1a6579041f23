//! End to end: the network service makes HTTP requests for a plugin only within its
//! network_outbound grant, against a real HTTP server on loopback.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;

use common::*;

/// A small HTTP/1.1 server on 127.0.0.1; returns its port.
fn http_server() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                if reader.read_line(&mut line).is_err() {
                    return;
                }
                let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
                loop {
                    let mut h = String::new();
                    if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                        break;
                    }
                }
                let reply = match path.as_str() {
                    "/slow" => {
                        std::thread::sleep(std::time::Duration::from_secs(5));
                        "HTTP/1.1 200 OK\r\nContent-Length: 4\r\nConnection: close\r\n\r\nlate".to_string()
                    }
                    "/hello" => "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello".to_string(),
                    "/redirect-same" => format!("HTTP/1.1 302 Found\r\nLocation: http://localhost:{port}/hello\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"),
                    "/redirect-ip" => format!("HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:{port}/hello\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"),
                    "/big" => {
                        let body = "x".repeat(2 << 20);
                        format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len())
                    }
                    _ => "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_string(),
                };
                let mut stream = stream;
                let _ = stream.write_all(reply.as_bytes());
            });
        }
    });
    port
}

fn install(d: &Daemon, name: &str, scope: &str) {
    let manifest = format!(
        "name = \"{name}\"\nversion = \"1.0.0\"\nentry = \"{name}\"\n\n[[permissions]]\nname = \"network_outbound\"\njustification = \"calls the local API\"\nscope = [\"{scope}\"]\n"
    );
    let pkg = d.package(name, &manifest, &bin("echo_plugin"), name);
    d.cli(&["plugin", "install", pkg.to_str().unwrap()]).ok();
    d.cli(&["plugin", "approve", name, "--comment", "local API"])
        .ok();
    d.cli(&["plugin", "enable", name]).ok();
    d.wait_running(name);
}

fn get(d: &Daemon, plugin: &str, url: &str) -> String {
    d.cli(&["plugin", "invoke", plugin, "http", url])
        .ok()
        .stdout
        .trim()
        .to_string()
}

#[test]
fn requests_go_only_where_the_grant_says_and_never_to_internal_addresses_by_default() {
    let d = Daemon::start_with(Settings {
        http_timeout: "1s",
        ..Settings::default()
    });
    let port = http_server();
    install(&d, "web", &format!("localhost:{port}"));
    install(&d, "local", &format!("private:localhost:{port}"));
    let url = |path: &str| format!("http://localhost:{port}{path}");

    // localhost resolves to 127.0.0.1: refused without the private mark...
    let out = get(&d, "web", &url("/hello"));
    assert!(
        out.starts_with("ERR Some(PermissionDenied)") && out.contains("internal addresses"),
        "{out}"
    );
    // ...and allowed with it.
    assert_eq!(
        get(&d, "local", &url("/hello")),
        format!("200 {} hello", url("/hello"))
    );

    // Redirects are checked like the first URL.
    assert_eq!(
        get(&d, "local", &url("/redirect-same")),
        format!("200 {} hello", url("/hello"))
    );
    let out = get(&d, "local", &url("/redirect-ip"));
    assert!(
        out.starts_with("ERR Some(PermissionDenied)") && out.contains("redirect refused"),
        "{out}"
    );

    // Outside the grant: another port, another host, an IP literal.
    for bad in [
        format!("http://localhost:{}/hello", port + 1),
        "http://example.com/".to_string(),
        format!("http://127.0.0.1:{port}/hello"),
    ] {
        let out = get(&d, "local", &bad);
        assert!(
            out.starts_with("ERR Some(PermissionDenied)"),
            "{bad}: {out}"
        );
    }

    // The response cap, and the request's deadline.
    let out = get(&d, "local", &url("/big"));
    assert!(out.starts_with("ERR Some(ResourceExhausted)"), "{out}");
    let t = std::time::Instant::now();
    let out = get(&d, "local", &url("/slow"));
    assert!(out.starts_with("ERR Some(DeadlineExceeded)"), "{out}");
    assert!(
        t.elapsed() < std::time::Duration::from_secs(4),
        "{:?}",
        t.elapsed()
    );

    // Every request is logged: host, method, status, bytes.
    let records: Vec<serde_json::Value> = d
        .audit(Some("local"))
        .into_iter()
        .filter(|r| r["action"] == "broker.http")
        .collect();
    let ok: Vec<&serde_json::Value> = records
        .iter()
        .filter(|r| r["outcome"] == "OUTCOME_OK")
        .collect();
    assert_eq!(ok.len(), 2, "{records:?}");
    let detail: serde_json::Value = ok[0]["detail"].clone();
    assert_eq!(detail["host"], format!("localhost:{port}"), "{detail}");
    assert_eq!(detail["method"], "GET");
    assert_eq!(detail["status"], 200);
    assert_eq!(detail["bytes"], 5);
    assert_eq!(
        records
            .iter()
            .filter(|r| r["outcome"] == "OUTCOME_DENIED")
            .count(),
        4
    );
}
