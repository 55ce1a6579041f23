//! `plexichat plugin trial NAME`: runs a plugin under review for a while with no
//! grants and prints what it tried against what it requested.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use broker_proto::admin::v1::{TrialEvent, TrialInvocation, TrialReport, TrialRequest};
use clap::Args;

use super::commands::{emit, Session};
use super::output::{escape_line, format_bytes};

/// Largest sample database sent (the daemon checks again).
const MAX_FIXTURE_DB_BYTES: u64 = 3 * 1024 * 1024;
const MAX_FIXTURE_HTTP_BYTES: u64 = 512 * 1024;

#[derive(Debug, Args)]
pub(super) struct TrialArgs {
    /// Plugin name (installed, not running)
    pub(super) name: String,
    /// How long it runs once it has connected (at most 5m)
    #[arg(long, value_name = "DURATION", value_parser = super::parse::duration, default_value = "30s")]
    duration: Duration,
    /// Deliver an event (repeatable), whether or not it subscribed
    #[arg(long = "event", value_name = "TOPIC=PAYLOAD")]
    events: Vec<String>,
    /// Invoke a command (repeatable): its name, then its arguments as UTF-8 text
    #[arg(long = "invoke", value_name = "'COMMAND ARGS'")]
    invocations: Vec<String>,
    /// A sample SQLite database (at most 3 MiB, read with your rights) the trial's
    /// database calls are answered from; without it they are refused
    #[arg(long, value_name = "FILE")]
    fixture_db: Option<PathBuf>,
    /// Canned HTTP answers, JSON {"URL": {"status": 200, "headers": {}, "body": ""}};
    /// other requests are refused
    #[arg(long, value_name = "FILE")]
    fixture_http: Option<PathBuf>,
}

/// Reads at most `max` bytes of `path` with the caller's rights; more is an error.
fn read_capped(path: &Path, max: u64, what: &str) -> Result<Vec<u8>> {
    let file = std::fs::File::open(path).with_context(|| format!("{what} {}", path.display()))?;
    let mut bytes = Vec::new();
    file.take(max + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("{what} {}", path.display()))?;
    if bytes.len() as u64 > max {
        bail!(
            "{what} {} is larger than {}",
            path.display(),
            format_bytes(max)
        );
    }
    Ok(bytes)
}

fn request(args: TrialArgs) -> Result<TrialRequest> {
    let events = args
        .events
        .iter()
        .map(|e| {
            let (topic, payload) = e
                .split_once('=')
                .with_context(|| format!("--event {e:?}: expected TOPIC=PAYLOAD"))?;
            Ok(TrialEvent {
                topic: topic.to_string(),
                payload: payload.as_bytes().to_vec(),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let invocations = args
        .invocations
        .iter()
        .map(|i| {
            let (command, rest) = i
                .trim()
                .split_once(char::is_whitespace)
                .unwrap_or((i.trim(), ""));
            if command.is_empty() {
                bail!("--invoke {i:?}: expected 'COMMAND ARGS'");
            }
            Ok(TrialInvocation {
                command: command.to_string(),
                args: rest.trim_start().as_bytes().to_vec(),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let fixture_db = match &args.fixture_db {
        Some(p) => read_capped(p, MAX_FIXTURE_DB_BYTES, "fixture database")?,
        None => Vec::new(),
    };
    let fixture_http = match &args.fixture_http {
        Some(p) => String::from_utf8(read_capped(p, MAX_FIXTURE_HTTP_BYTES, "fixture http")?)
            .with_context(|| format!("fixture http {} is not UTF-8", p.display()))?,
        None => String::new(),
    };
    Ok(TrialRequest {
        plugin: args.name,
        duration_ms: u64::try_from(args.duration.as_millis()).unwrap_or(u64::MAX),
        events,
        invocations,
        fixture_db,
        fixture_http,
    })
}

pub(super) async fn run(session: &Session, args: TrialArgs) -> Result<()> {
    let req = request(args)?;
    let report = session
        .connect()
        .await?
        .trial_plugin(req)
        .await?
        .into_inner();
    emit(&session.render(&report, report_text)?)
}

/// The report as text: plugin text (targets, output, log) is escaped.
fn report_text(r: &TrialReport) -> String {
    let mut out = format!(
        "Trial of {} {}: ran {} ({}), {}\n",
        escape_line(&r.plugin),
        escape_line(&r.version),
        humantime::format_duration(Duration::from_millis(r.ran_ms)),
        if r.confined {
            "confined"
        } else {
            "NOT confined"
        },
        escape_line(&r.exit)
    );
    out.push_str("\nPermissions (tried vs requested):\n");
    if r.lines.is_empty() {
        out.push_str("  (it requested nothing and tried nothing that needs a permission)\n");
    }
    for l in &r.lines {
        out.push_str(&format!("  {}\n", escape_line(&l.text)));
    }
    let other: Vec<_> = r
        .attempts
        .iter()
        .filter(|a| a.permission.is_empty())
        .collect();
    if !other.is_empty() {
        out.push_str("\nOther calls (no permission needed):\n");
        for a in other {
            out.push_str(&format!(
                "  {} {} (x{})\n",
                a.call,
                escape_line(&a.target),
                a.count
            ));
        }
    }
    if r.attempts_dropped > 0 {
        out.push_str(&format!(
            "  ... and {} more calls past the recording cap\n",
            r.attempts_dropped
        ));
    }
    out.push_str("\nSyscalls refused by seccomp:");
    if r.syscalls.is_empty() {
        out.push_str(" none\n");
    } else {
        out.push('\n');
        for s in &r.syscalls {
            out.push_str(&format!("  {} (x{})\n", escape_line(&s.name), s.count));
        }
    }
    if let Some(p) = &r.peaks {
        out.push_str(&format!(
            "\nPeaks: memory {}, pids {}, CPU {} in all (at most {:.2} cores)\n  read from: {}\n",
            format_bytes(p.memory_bytes),
            p.pids,
            humantime::format_duration(Duration::from_millis(p.cpu_usec / 1000)),
            f64::from(p.cpu_peak_millicores) / 1000.0,
            p.source
        ));
    }
    if r.events_delivered > 0 || !r.invocations.is_empty() {
        out.push_str(&format!("\nEvents delivered: {}\n", r.events_delivered));
        for i in &r.invocations {
            out.push_str(&format!(
                "  invoke {}: {} {}\n",
                escape_line(&i.command),
                if i.ok { "ok" } else { "failed" },
                escape_line(&i.output)
            ));
        }
    }
    out.push_str("\nLog tail:");
    if r.log_tail.is_empty() {
        out.push_str(" (empty)\n");
    } else {
        out.push('\n');
        for l in &r.log_tail {
            out.push_str(&format!("  {}\n", escape_line(l)));
        }
    }
    out.trim_end().to_string()
}
