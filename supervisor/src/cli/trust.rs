//! `plexichat trust ...`: the publisher keys trusted to sign plugin packages, added by
//! two admins, listed with their history, removed or revoked.

use anyhow::{Context, Result};
use broker_proto::admin::v1::{
    AddTrustedKeyRequest, ListTrustedKeysRequest, ListTrustedKeysResponse, TrustKeyChange,
    TrustState, TrustedKey,
};
use broker_proto::label::label;

use super::args::TrustCommand;
use super::commands::{emit, Session};
use super::output::{escape_line, format_ms, join_or_none, or_none, Table};

pub async fn run(session: &Session, cmd: TrustCommand) -> Result<()> {
    match cmd {
        TrustCommand::AddKey {
            file,
            name,
            plugins,
            comment,
        } => {
            let public_key = std::fs::read_to_string(&file)
                .with_context(|| format!("key file {}", file.display()))?;
            let req = AddTrustedKeyRequest {
                public_key,
                publisher: name,
                plugins: plugins.unwrap_or_default(),
                comment: comment.unwrap_or_default(),
            };
            let key = session
                .connect()
                .await?
                .add_trusted_key(req)
                .await?
                .into_inner();
            emit(&session.render(&key, added_text)?)
        }
        TrustCommand::List => {
            let resp = session
                .connect()
                .await?
                .list_trusted_keys(ListTrustedKeysRequest {})
                .await?
                .into_inner();
            emit(&session.render(&resp, keys_table)?)
        }
        TrustCommand::Remove {
            fingerprint,
            comment,
        } => end(session, fingerprint, comment, false).await,
        TrustCommand::Revoke {
            fingerprint,
            comment,
        } => end(session, fingerprint, comment, true).await,
    }
}

/// `trust remove` or, with `revoke`, `trust revoke`.
async fn end(
    session: &Session,
    fingerprint: String,
    comment: Option<String>,
    revoke: bool,
) -> Result<()> {
    let req = TrustKeyChange {
        fingerprint,
        comment: comment.unwrap_or_default(),
    };
    let mut admin = session.connect().await?;
    let key = if revoke {
        admin.revoke_trusted_key(req).await?
    } else {
        admin.remove_trusted_key(req).await?
    };
    emit(&session.render(&key.into_inner(), ended_text)?)
}

fn state(k: &TrustedKey) -> String {
    label(TrustState::try_from(k.state).unwrap_or_default())
}

fn added_text(k: &TrustedKey) -> String {
    let what = match TrustState::try_from(k.state) {
        Ok(TrustState::Proposed) => format!(
            "proposed by {}: a second, different admin must run the same `plexichat trust add-key` to trust it",
            k.proposed_by
        ),
        _ => format!(
            "trusted (proposed by {}, added by {})",
            k.proposed_by, k.approved_by
        ),
    };
    escape_line(&format!(
        "key {} of {} for plugins `{}`: {what}",
        k.fingerprint, k.publisher, k.plugins
    ))
}

fn ended_text(k: &TrustedKey) -> String {
    let mut out = String::new();
    push_line(
        &mut out,
        &format!(
            "key {} of {} is now {}",
            k.fingerprint,
            k.publisher,
            state(k)
        ),
    );
    if TrustState::try_from(k.state) == Ok(TrustState::Revoked) && !k.signed_plugins.is_empty() {
        push_line(
            &mut out,
            &format!(
                "flagged (with an alert each): {}",
                k.signed_plugins.join(", ")
            ),
        );
    }
    out
}

fn keys_table(r: &ListTrustedKeysResponse) -> String {
    if r.keys.is_empty() {
        return "no publisher keys (`plexichat trust add-key`)\n".into();
    }
    let mut table = Table::new(&[
        "FINGERPRINT",
        "PUBLISHER",
        "PLUGINS",
        "STATE",
        "PROPOSED",
        "ADDED",
        "ENDED",
        "SIGNED",
    ]);
    for k in &r.keys {
        let ended = if k.ended_by.is_empty() {
            "-".to_string()
        } else {
            format!(
                "{} {} ({})",
                format_ms(k.ended_at_ms),
                k.ended_by,
                k.end_comment
            )
        };
        let added = if k.approved_by.is_empty() {
            "-".to_string()
        } else {
            format!("{} {}", format_ms(k.approved_at_ms), k.approved_by)
        };
        table.row(vec![
            k.fingerprint.clone(),
            k.publisher.clone(),
            k.plugins.clone(),
            state(k),
            format!(
                "{} {}",
                format_ms(k.proposed_at_ms),
                or_none(&k.proposed_by)
            ),
            added,
            ended,
            join_or_none(&k.signed_plugins),
        ]);
    }
    table.render()
}

/// One escaped line and its newline.
fn push_line(out: &mut String, text: &str) {
    out.push_str(&escape_line(text));
    out.push('\n');
}
