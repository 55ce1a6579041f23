//! `plugin review NAME` (the reviewer's dossier) and `advisories import DIR` (the CLI
//! reads the database with the caller's rights and streams it), and the dependency
//! and advisory lines `plugin show` and `plugin install` print.

use std::path::Path;

use anyhow::{Context, Result};
use broker_proto::admin::v1::{
    AdvisoryChunk, AdvisoryFinding, ImportAdvisoriesResponse, PluginDetail, PluginRef,
    PluginReview, TrustState,
};
use broker_proto::label::label;

use super::commands::{emit, Session};
use super::output::{
    escape_line, format_bytes, format_ms, join_or_none, key_values, or_none, signer_text, Table,
};
use crate::advisories;

/// What `plugin show` and `plugin install` add: the dependency summary and every
/// advisory finding (one line each).
pub fn package_lines(d: &PluginDetail) -> String {
    let mut out = String::new();
    if let Some(i) = &d.dependencies {
        let line = if i.known {
            format!(
                "dependencies: {} ({} checked against advisories)",
                i.note,
                i.dependencies.len()
            )
        } else {
            i.note.clone()
        };
        push_line(&mut out, &line);
    }
    for f in &d.advisories {
        push_line(&mut out, &format!("ADVISORY: {}", finding_text(f)));
    }
    out
}

fn finding_text(f: &AdvisoryFinding) -> String {
    let mut s = format!(
        "{} {} {} ({}): ",
        f.advisory_id, f.package, f.version, f.ecosystem
    );
    if !f.informational.is_empty() {
        s.push_str(&format!("[informational: {}] ", f.informational));
    }
    s.push_str(&f.title);
    if !f.severity.is_empty() {
        s.push_str(&format!(" [{}]", f.severity));
    }
    s.push_str(&format!(" ({})", f.patched));
    s
}

pub async fn review(session: &Session, name: String) -> Result<()> {
    let r = session
        .connect()
        .await?
        .review_plugin(PluginRef { name })
        .await?
        .into_inner();
    emit(&session.render(&r, review_text)?)
}

fn review_text(r: &PluginReview) -> String {
    let d = r.plugin.clone().unwrap_or_default();
    let s = d.summary.clone().unwrap_or_default();
    let mut out = String::new();
    push_line(
        &mut out,
        &format!("review of {} {} ({})", s.name, s.version, label(s.state())),
    );
    out.push_str(&key_values(&[
        ("description", or_none(&d.description)),
        ("author", or_none(&d.author)),
    ]));
    out.push_str("\n== requested permissions ==\n");
    if r.permissions.is_empty() {
        out.push_str("none\n");
    }
    for p in &r.permissions {
        push_line(
            &mut out,
            &format!(
                "{} [{} risk, {} approval(s), {}]",
                p.permission,
                label(p.risk()),
                p.required_approvals,
                label(p.status())
            ),
        );
        push_line(&mut out, &format!("  scope: {}", join_or_none(&p.scope)));
        push_line(
            &mut out,
            &format!(
                "  justification (the author's words): {}",
                or_none(&p.justification)
            ),
        );
        push_line(&mut out, &format!("  approving allows: {}", p.allows));
    }
    out.push_str("\n== signer ==\n");
    push_line(&mut out, &signer_text(s.signer.as_ref()));
    if let Some(k) = &r.signer_key {
        push_line(
            &mut out,
            &format!(
                "key {} of {} for plugins `{}`: {}; proposed {} by {}; trusted {} by {}{}",
                k.fingerprint,
                k.publisher,
                k.plugins,
                label(TrustState::try_from(k.state).unwrap_or_default()),
                format_ms(k.proposed_at_ms),
                k.proposed_by,
                format_ms(k.approved_at_ms),
                or_none(&k.approved_by),
                if k.ended_by.is_empty() {
                    String::new()
                } else {
                    format!(
                        "; ended {} by {} ({})",
                        format_ms(k.ended_at_ms),
                        k.ended_by,
                        k.end_comment
                    )
                }
            ),
        );
        push_line(
            &mut out,
            &format!("signed (installed): {}", join_or_none(&k.signed_plugins)),
        );
    }
    out.push_str("\n== package ==\n");
    if let Some(p) = &r.package {
        if let Some(e) = &p.entry {
            let links = if e.static_binary {
                "static (links nothing)".to_string()
            } else if e.interpreter.is_empty() && e.needed.is_empty() {
                "-".to_string()
            } else {
                format!(
                    "interpreter {}, needs {}",
                    or_none(&e.interpreter),
                    join_or_none(&e.needed)
                )
            };
            out.push_str(&key_values(&[
                ("entry", e.path.clone()),
                ("format", e.format.clone()),
                ("links", links),
                (
                    "files",
                    format!("{} ({})", p.files.len(), format_bytes(p.bytes)),
                ),
            ]));
        }
        let mut table = Table::new(&["FILE", "MODE", "BYTES", "SHA256"]);
        for f in &p.files {
            table.row([
                f.path.clone(),
                format!("{:o}", f.mode),
                f.size.to_string(),
                f.sha256.clone(),
            ]);
        }
        out.push_str(&table.render());
    }
    out.push_str("\n== dependencies and advisories ==\n");
    let deps = package_lines(&d);
    out.push_str(if deps.is_empty() {
        "dependencies unknown (installed before they were recorded)\n"
    } else {
        &deps
    });
    if let Some(i) = &d.dependencies {
        if i.known && d.advisories.is_empty() {
            out.push_str("no advisory in the imported database names them (`plexichat advisories import DIR` refreshes it)\n");
        }
    }
    out.push_str("\n== declared settings and commands ==\n");
    for st in &r.settings {
        push_line(
            &mut out,
            &format!(
                "setting {}{}: {}",
                st.key,
                if st.secret { " (secret)" } else { "" },
                or_none(&st.description)
            ),
        );
    }
    for c in &d.commands {
        push_line(
            &mut out,
            &format!("command {}: {}", c.name, or_none(&c.description)),
        );
    }
    if r.settings.is_empty() && d.commands.is_empty() {
        out.push_str("none\n");
    }
    if let Some(u) = &r.update {
        push_line(
            &mut out,
            &format!(
                "\n== what the update from {} changed ==",
                u.previous_version
            ),
        );
        push_line(
            &mut out,
            &format!(
                "previous signer: {}",
                signer_text(u.previous_signer.as_ref())
            ),
        );
        for p in &u.permissions {
            push_line(
                &mut out,
                &format!(
                    "permission {} {}: {} -> {}",
                    p.permission,
                    p.change.to_uppercase(),
                    join_or_none(&p.before),
                    join_or_none(&p.after)
                ),
            );
        }
        for f in &u.files {
            push_line(&mut out, &format!("file {}: {}", f.path, f.change));
        }
        if u.permissions.is_empty() && u.files.is_empty() {
            out.push_str("nothing\n");
        }
    }
    out
}

/// Reads the advisory directory here (RustSec advisory-db and OSV PyPI files) and
/// streams the normalised database.
pub async fn import(session: &Session, dir: &Path) -> Result<()> {
    let source = std::fs::canonicalize(dir)
        .with_context(|| format!("advisory directory {}", dir.display()))?
        .display()
        .to_string();
    let root = dir.to_path_buf();
    let db = tokio::task::spawn_blocking(move || advisories::load_dir(&root))
        .await
        .context("reading the advisory database")??;
    let json = db.to_json()?.into_bytes();
    let mut chunks = Vec::new();
    for (i, piece) in json.chunks(1024 * 1024).enumerate() {
        chunks.push(AdvisoryChunk {
            source: if i == 0 {
                source.clone()
            } else {
                String::new()
            },
            data: piece.to_vec(),
        });
    }
    if chunks.is_empty() {
        chunks.push(AdvisoryChunk {
            source,
            data: Vec::new(),
        });
    }
    let resp = session
        .connect()
        .await?
        .import_advisories(tokio_stream::iter(chunks))
        .await?
        .into_inner();
    emit(&session.render(&resp, imported_text)?)
}

fn imported_text(r: &ImportAdvisoriesResponse) -> String {
    let db = r.database.clone().unwrap_or_default();
    let mut out = String::new();
    push_line(
        &mut out,
        &format!("imported {} advisories from {}", db.advisories, db.source),
    );
    if r.flagged.is_empty() {
        out.push_str("no installed plugin depends on an affected version\n");
    }
    for p in &r.flagged {
        for f in &p.findings {
            push_line(
                &mut out,
                &format!("FLAGGED {} (alert raised): {}", p.plugin, finding_text(f)),
            );
        }
    }
    out
}

/// One escaped line and its newline.
fn push_line(out: &mut String, text: &str) {
    out.push_str(&escape_line(text));
    out.push('\n');
}
