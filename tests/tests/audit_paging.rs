//! End to end: `QueryAudit` answers in pages that fit the admin message limit (by
//! count and by bytes), and `plexichat audit plugins` follows them to any `--limit`.

mod common;

use broker_proto::admin::v1::{AuditQuery, SetSafeModeRequest};
use common::*;

/// Every audit record id in the store, ascending.
fn store_ids(d: &Daemon) -> Vec<i64> {
    let c = rusqlite::Connection::open(d.root().join("state/store.db")).unwrap();
    let mut stmt = c.prepare("SELECT id FROM audit_log ORDER BY id").unwrap();
    let ids = stmt
        .query_map([], |r| r.get::<_, i64>(0))
        .unwrap()
        .map(|r| r.unwrap())
        .collect();
    ids
}

fn cli_ids(d: &Daemon, limit: &str) -> Vec<serde_json::Value> {
    let v = d
        .cli(&[
            "audit",
            "plugins",
            "--output-format",
            "json",
            "--limit",
            limit,
        ])
        .json();
    v["records"].as_array().cloned().unwrap_or_default()
}

#[test]
fn audit_queries_page_and_the_cli_follows_them() {
    let d = Daemon::start_with(Settings {
        broker_rate: (1_000_000.0, 1_000_000),
        ..Settings::default()
    });
    let manifest = "name = \"echo\"\nversion = \"1.0.0\"\nentry = \"echo\"\n";
    let pkg = d.package("echo", manifest, &bin("echo_plugin"), "echo");
    d.cli(&["plugin", "install", pkg.to_str().unwrap()]).ok();
    d.cli(&["plugin", "enable", "echo"]).ok();
    d.wait_running("echo");
    // 12 000 brokered calls, each audited: more than two full pages.
    for _ in 0..12 {
        let out = d.cli(&["plugin", "invoke", "echo", "bench-calls", "1000 8"]);
        assert!(out.ok().stdout.contains("\"calls\":1000"), "{}", out.stdout);
    }

    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut admin = rt.block_on(d.admin());
    // Six admin records with 1 MiB comments: stored cut to the audit caps (8 KiB a
    // record), so no record can make a page, or a plugin's history, unreadable.
    let comment = "c".repeat(1 << 20);
    for i in 0..6 {
        rt.block_on(admin.set_safe_mode(SetSafeModeRequest {
            enabled: i % 2 == 0,
            comment: comment.clone(),
        }))
        .expect("safe mode");
    }

    // A full page of the newest records, within the message limit, naming the next
    // cursor. (Cutting a page by bytes is unit-tested in `admin::audit_page`: with
    // records capped, 5000 of them no longer outgrow a message here.)
    let page = rt
        .block_on(admin.query_audit(AuditQuery {
            page_size: broker_proto::MAX_AUDIT_PAGE_RECORDS,
            ..AuditQuery::default()
        }))
        .expect("first page")
        .into_inner();
    println!(
        "first page: {} records, next_before_id {}",
        page.records.len(),
        page.next_before_id
    );
    let detail_bytes: usize = page
        .records
        .iter()
        .map(|r| serde_json::to_string(&r.detail).map_or(0, |d| d.len()))
        .sum();
    assert_eq!(
        page.records.len(),
        broker_proto::MAX_AUDIT_PAGE_RECORDS as usize
    );
    assert!(detail_bytes <= broker_proto::MAX_ADMIN_MESSAGE_BYTES);
    assert!(page.next_before_id > 0);
    assert_eq!(page.next_before_id, page.records[0].id);
    // Pages walk back without gaps or overlaps.
    let second = rt
        .block_on(admin.query_audit(AuditQuery {
            page_size: 5000,
            before_id: page.next_before_id,
            ..AuditQuery::default()
        }))
        .unwrap()
        .into_inner();
    assert_eq!(second.records.last().unwrap().id, page.next_before_id - 1);

    // The CLI follows every page: all of them, in order, nothing twice.
    let all = cli_ids(&d, "100000");
    let ids: Vec<i64> = all.iter().map(|r| int(&r["id"])).collect();
    let stored = store_ids(&d);
    println!("{} records listed, {} stored", ids.len(), stored.len());
    assert!(ids.len() > 2 * broker_proto::MAX_AUDIT_PAGE_RECORDS as usize);
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "in order");
    assert_eq!(
        ids[..],
        stored[..ids.len()],
        "every stored record, from the first"
    );
    assert!(
        stored.len() - ids.len() < 5,
        "only records written since are missing"
    );
    let capped: Vec<&serde_json::Value> = all
        .iter()
        .filter(|r| {
            r["action"]
                .as_str()
                .unwrap_or_default()
                .starts_with("emergency.safe_mode")
        })
        .collect();
    assert_eq!(capped.len(), 6, "the large records listed");
    for r in capped {
        let detail = r["detail"].to_string();
        assert!(
            detail.len() <= 9 << 10,
            "a record of {} bytes",
            detail.len()
        );
        assert!(
            detail.contains("sha256"),
            "cut with its hash: {detail:.200}"
        );
    }

    // A smaller limit is the newest N.
    let newest: Vec<i64> = cli_ids(&d, "7").iter().map(|r| int(&r["id"])).collect();
    let stored = store_ids(&d);
    assert_eq!(newest[..], stored[stored.len() - 7..]);

    // Sizes out of range are refused, naming the bound; a caller from before
    // paging gets one page at most.
    let err = rt
        .block_on(admin.query_audit(AuditQuery {
            page_size: broker_proto::MAX_AUDIT_PAGE_RECORDS + 1,
            ..AuditQuery::default()
        }))
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert!(
        err.message().contains("largest audit page (5000 records)"),
        "{}",
        err.message()
    );
    let err = rt
        .block_on(admin.query_audit(AuditQuery {
            before_id: -1,
            ..AuditQuery::default()
        }))
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    let legacy = rt
        .block_on(admin.query_audit(AuditQuery {
            limit: 100_000,
            before_id: page.next_before_id,
            ..AuditQuery::default()
        }))
        .unwrap()
        .into_inner();
    assert_eq!(
        legacy.records.len(),
        broker_proto::MAX_AUDIT_PAGE_RECORDS as usize
    );
    for bad in ["0", "1000001"] {
        let out = d.cli(&["audit", "plugins", "--limit", bad]);
        assert_eq!(out.status.code(), Some(2), "--limit {bad}: {}", out.stderr);
        assert!(
            out.stderr.contains("--limit") && out.stderr.contains("1..=1000000"),
            "{}",
            out.stderr
        );
    }
}
