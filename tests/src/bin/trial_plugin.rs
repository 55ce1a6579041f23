//! Test plugin for `plexichat plugin trial`: `probe URL...` tries an unrequested table,
//! each URL and a syscall seccomp refuses, and answers what each call got back;
//! `read-fixture` reads the `users` table; events are logged.

use plexichat_plugin_sdk::{Event, Plugin, PluginContext, SdkError, SqlValue};

fn verdict<T>(r: Result<T, SdkError>) -> String {
    match r {
        Ok(_) => "ok".into(),
        Err(e) => format!("{:?}", e.code()),
    }
}

async fn probe(ctx: &PluginContext, args: &[u8]) -> String {
    let mut out = Vec::new();
    let db = ctx
        .db()
        .query("SELECT password_hash FROM users", Vec::<SqlValue>::new())
        .await;
    out.push(format!("db={}", verdict(db)));
    for url in String::from_utf8_lossy(args).split_whitespace() {
        out.push(format!("{url}={}", verdict(ctx.http().get(url).await)));
    }
    // bpf(BPF_PROG_LOAD, zeroed attr): the policy denies bpf outright.
    let attr = [0u64; 16];
    // SAFETY: attr is readable for its size; a returned fd is closed.
    let rc = unsafe { libc::syscall(libc::SYS_bpf, 5, attr.as_ptr(), 128) };
    if rc >= 0 {
        // SAFETY: closing the fd bpf returned.
        unsafe { libc::close(rc as i32) };
    }
    out.push(format!(
        "bpf={}",
        if rc < 0 { "refused" } else { "allowed" }
    ));
    out.join(" ")
}

async fn read_fixture(ctx: &PluginContext) -> String {
    match ctx
        .db()
        .query("SELECT name FROM users ORDER BY id", Vec::<SqlValue>::new())
        .await
    {
        Ok(r) => format!("rows={}", r.rows.len()),
        Err(e) => format!("ERR {:?}", e.code()),
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), SdkError> {
    eprintln!("trial plugin starting");
    Plugin::new()
        .on_command("probe", |ctx: PluginContext, args: Vec<u8>| async move {
            Ok::<String, String>(probe(&ctx, &args).await)
        })
        .on_command(
            "read-fixture",
            |ctx: PluginContext, _args: Vec<u8>| async move {
                Ok::<String, String>(read_fixture(&ctx).await)
            },
        )
        .on_event("trial.*", |ctx: PluginContext, event: Event| async move {
            let line = format!("event {} {}", event.topic, event.text().unwrap_or(""));
            let _ = ctx.info(&line).await;
        })
        .run()
        .await
}
