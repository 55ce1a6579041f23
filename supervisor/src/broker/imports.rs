//! The modules a plugin's runtime reported loading in one run (ReportImports): checked,
//! kept in load order up to a cap, each new name audited as `plugin.import`.

use std::collections::HashSet;
use std::sync::Mutex;

use broker_proto::broker::v1::ImportedModule;

/// Names kept per run; reports past it are counted only, so a plugin importing
/// without end cannot grow the supervisor's memory or the audit trail.
pub const MAX_IMPORTS_PER_RUN: usize = 1024;
/// Modules one ReportImports call may carry.
pub const MAX_PER_REPORT: usize = 256;
const MAX_NAME_BYTES: usize = 256;
const MAX_ORIGIN_BYTES: usize = 1024;

/// One module as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Import {
    pub name: String,
    pub origin: String,
    pub at_ms: i64,
}

#[derive(Debug, Default)]
struct Inner {
    seen: HashSet<String>,
    kept: Vec<Import>,
    over_cap: u32,
}

/// One run's imports; shared by the broker connection that records them and the
/// runtime status that shows them after the process is gone.
#[derive(Debug, Default)]
pub struct ImportLog(Mutex<Inner>);

/// What one report added.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Recorded {
    pub new: Vec<Import>,
    pub over_cap: u32,
}

/// Refuses a report that is too large or names something that is not a module name.
pub fn validate(modules: &[ImportedModule]) -> Result<(), String> {
    if modules.len() > MAX_PER_REPORT {
        return Err(format!(
            "{} modules in one report; at most {MAX_PER_REPORT}",
            modules.len()
        ));
    }
    for (i, m) in modules.iter().enumerate() {
        if !is_module_name(&m.name) {
            return Err(format!(
                "modules[{i}].name {:?} is not a dotted module name of at most {MAX_NAME_BYTES} bytes",
                crate::text::prefix(&m.name, 64)
            ));
        }
        if m.origin.len() > MAX_ORIGIN_BYTES || m.origin.contains('\0') {
            return Err(format!(
                "modules[{i}].origin is over {MAX_ORIGIN_BYTES} bytes or holds a NUL"
            ));
        }
    }
    Ok(())
}

fn is_module_name(name: &str) -> bool {
    name.len() <= MAX_NAME_BYTES
        && name.split('.').all(|part| {
            let mut chars = part.chars();
            chars
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        })
}

impl ImportLog {
    /// The names in `modules` not seen before in this run, without recording them:
    /// the caller audits them first and [`ImportLog::commit`]s what was audited.
    pub fn fresh(&self, modules: Vec<ImportedModule>, at_ms: i64) -> Recorded {
        let Ok(inner) = self.0.lock() else {
            return Recorded::default();
        };
        let mut out = Recorded::default();
        let mut batch = HashSet::new();
        for m in modules {
            if inner.seen.contains(&m.name) || !batch.insert(m.name.clone()) {
                continue;
            }
            if inner.kept.len() + out.new.len() >= MAX_IMPORTS_PER_RUN {
                out.over_cap += 1;
                continue;
            }
            out.new.push(Import {
                name: m.name,
                origin: m.origin,
                at_ms,
            });
        }
        out
    }

    /// Keeps what was audited. A name two concurrent reports both found fresh is
    /// kept once.
    pub fn commit(&self, recorded: &Recorded) {
        let Ok(mut inner) = self.0.lock() else {
            return;
        };
        inner.over_cap = inner.over_cap.saturating_add(recorded.over_cap);
        for import in &recorded.new {
            if inner.kept.len() < MAX_IMPORTS_PER_RUN && inner.seen.insert(import.name.clone()) {
                inner.kept.push(import.clone());
            }
        }
    }

    /// Everything kept, in load order, and the count past the cap.
    pub fn snapshot(&self) -> (Vec<Import>, u32) {
        self.0
            .lock()
            .map(|i| (i.kept.clone(), i.over_cap))
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn module(name: &str) -> ImportedModule {
        ImportedModule {
            name: name.into(),
            origin: format!("/usr/lib/python3.11/{name}.py"),
        }
    }

    #[test]
    fn names_are_dotted_identifiers_and_reports_are_bounded() {
        assert!(validate(&[module("json"), module("ctypes.util"), module("_ssl")]).is_ok());
        for bad in ["", "a..b", "1json", "os/path", "x y", ".json"] {
            let err = validate(&[module(bad)]).unwrap_err();
            assert!(err.contains("modules[0].name"), "{bad}: {err}");
        }
        let many: Vec<_> = (0..=MAX_PER_REPORT)
            .map(|i| module(&format!("m{i}")))
            .collect();
        assert!(validate(&many).unwrap_err().contains("at most 256"));
        let mut nul = module("json");
        nul.origin.push('\0');
        assert!(validate(&[nul]).unwrap_err().contains("origin"));
    }

    #[test]
    fn each_name_is_recorded_once_per_run_up_to_the_cap() {
        let log = ImportLog::default();
        let first = log.fresh(vec![module("json"), module("json"), module("socket")], 1);
        assert_eq!(first.new.len(), 2);
        // Not committed (the audit failed): still fresh next time.
        assert_eq!(log.fresh(vec![module("json")], 2).new.len(), 1);
        log.commit(&first);
        assert!(log.fresh(vec![module("json")], 3).new.is_empty());
        for chunk in 0..5 {
            let batch: Vec<_> = (0..MAX_PER_REPORT)
                .map(|i| module(&format!("m{chunk}_{i}")))
                .collect();
            let r = log.fresh(batch, 4);
            log.commit(&r);
        }
        let (kept, over) = log.snapshot();
        assert_eq!(kept.len(), MAX_IMPORTS_PER_RUN);
        assert_eq!(kept[0].name, "json");
        assert_eq!(over as usize, 2 + 5 * MAX_PER_REPORT - MAX_IMPORTS_PER_RUN);
    }
}
