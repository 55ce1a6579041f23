//! Trial runs of a plugin under review: what the admin asks for (duration, events,
//! invocations, fixtures), the broker that refuses and records, and the report.

// The run itself (launch, confinement, peaks) is `runtime::trial`: it goes through
// the same launch path as a real start. This module never touches a real resource:
// the trial broker holds no store, hub, network client or data dir of the plugin.

pub mod broker;
mod fixtures;
mod recorder;
pub mod report;
mod sql;

use std::time::Duration;

use broker_proto::admin::v1::TrialRequest;

pub use fixtures::{Canned, HttpFixture, MAX_HTTP_FIXTURE_BYTES};
pub use recorder::{Attempt, Recorded, Recorder, MAX_ATTEMPTS};

/// How long a trial runs when the request does not say.
pub const DEFAULT_DURATION: Duration = Duration::from_secs(30);
/// The longest trial: the plugin's lifecycle lock is held meanwhile.
pub const MAX_DURATION: Duration = Duration::from_secs(300);
const MIN_DURATION: Duration = Duration::from_secs(1);
/// Largest sample database an admin may send: with the HTTP fixture, the request
/// stays within the admin API's 4 MiB message limit (a bigger one would need a
/// streamed upload).
pub const MAX_FIXTURE_DB_BYTES: usize = 3 * 1024 * 1024;
const MAX_EVENTS: usize = 64;
const MAX_INVOCATIONS: usize = 32;
const MAX_PAYLOAD_BYTES: usize = 64 * 1024;
const SQLITE_MAGIC: &[u8] = b"SQLite format 3\0";

/// A request that cannot be run, naming what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PlanError(pub String);

/// A validated trial request.
#[derive(Debug, Clone)]
pub struct TrialPlan {
    pub duration: Duration,
    pub events: Vec<(String, Vec<u8>)>,
    pub invocations: Vec<(String, Vec<u8>)>,
    pub fixture_db: Option<Vec<u8>>,
    pub fixture_http: Option<HttpFixture>,
}

impl TrialPlan {
    pub fn from_request(req: TrialRequest) -> Result<TrialPlan, PlanError> {
        let duration = match req.duration_ms {
            0 => DEFAULT_DURATION,
            ms => Duration::from_millis(ms),
        };
        if !(MIN_DURATION..=MAX_DURATION).contains(&duration) {
            return Err(PlanError(format!(
                "duration must be between {} and {} (got {})",
                humantime::format_duration(MIN_DURATION),
                humantime::format_duration(MAX_DURATION),
                humantime::format_duration(duration)
            )));
        }
        if req.events.len() > MAX_EVENTS || req.invocations.len() > MAX_INVOCATIONS {
            return Err(PlanError(format!(
                "at most {MAX_EVENTS} events and {MAX_INVOCATIONS} invocations per trial"
            )));
        }
        let mut events = Vec::with_capacity(req.events.len());
        for e in req.events {
            crate::manifest::validate_topic_pattern(&e.topic)
                .map_err(|why| PlanError(format!("event topic `{}`: {why}", e.topic)))?;
            if e.topic.ends_with('*') {
                return Err(PlanError(format!(
                    "event topic `{}`: an event has a concrete topic, not a pattern",
                    e.topic
                )));
            }
            if e.payload.len() > MAX_PAYLOAD_BYTES {
                return Err(PlanError(format!(
                    "event `{}`: payloads are at most {MAX_PAYLOAD_BYTES} bytes",
                    e.topic
                )));
            }
            events.push((e.topic, e.payload));
        }
        let mut invocations = Vec::with_capacity(req.invocations.len());
        for i in req.invocations {
            if i.command.is_empty() || i.command.len() > 128 {
                return Err(PlanError("invocation: command must be 1-128 bytes".into()));
            }
            if i.args.len() > MAX_PAYLOAD_BYTES {
                return Err(PlanError(format!(
                    "invocation `{}`: arguments are at most {MAX_PAYLOAD_BYTES} bytes",
                    i.command
                )));
            }
            invocations.push((i.command, i.args));
        }
        let fixture_db = match req.fixture_db {
            db if db.is_empty() => None,
            db if db.len() > MAX_FIXTURE_DB_BYTES => {
                return Err(PlanError(format!(
                    "fixture database: at most {} MiB (got {} bytes)",
                    MAX_FIXTURE_DB_BYTES / (1024 * 1024),
                    db.len()
                )))
            }
            db if !db.starts_with(SQLITE_MAGIC) => {
                return Err(PlanError(
                    "fixture database: not an SQLite database (no `SQLite format 3` header)".into(),
                ))
            }
            db => Some(db),
        };
        let fixture_http = match req.fixture_http.trim() {
            "" => None,
            text => Some(
                HttpFixture::parse(text).map_err(|e| PlanError(format!("fixture http: {e}")))?,
            ),
        };
        Ok(TrialPlan {
            duration,
            events,
            invocations,
            fixture_db,
            fixture_http,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use broker_proto::admin::v1::TrialEvent;

    #[test]
    fn durations_outside_the_bounds_are_refused_by_name() {
        let plan = |ms| {
            TrialPlan::from_request(TrialRequest {
                plugin: "p".into(),
                duration_ms: ms,
                ..Default::default()
            })
        };
        assert_eq!(plan(0).unwrap().duration, DEFAULT_DURATION);
        assert_eq!(plan(2_000).unwrap().duration, Duration::from_secs(2));
        let long = plan(301_000).unwrap_err().to_string();
        assert!(
            long.contains("between 1s and 5m") && long.contains("5m 1s"),
            "{long}"
        );
        assert!(plan(500).is_err());
    }

    #[test]
    fn bad_events_and_fixtures_are_refused() {
        let req = |f: fn(&mut TrialRequest)| {
            let mut r = TrialRequest::default();
            f(&mut r);
            TrialPlan::from_request(r)
        };
        let e = req(|r| {
            r.events.push(TrialEvent {
                topic: "chat.*".into(),
                payload: vec![],
            })
        })
        .unwrap_err();
        assert!(e.to_string().contains("concrete topic"), "{e}");
        let e = req(|r| r.fixture_db = b"not a database".to_vec()).unwrap_err();
        assert!(e.to_string().contains("not an SQLite database"), "{e}");
        let e = req(|r| r.fixture_http = "[1]".into()).unwrap_err();
        assert!(e.to_string().starts_with("fixture http:"), "{e}");
    }
}
