//! "Did you mean": when the supervisor answers NOT_FOUND for a plugin name the
//! installed names are fetched and the closest ones (edit distance <= 2 or a prefix) added.

// Why here and not in the daemon's NOT_FOUND message: the daemon maps a missing
// plugin to a status in a free function (`store_status`) shared by ~36 call sites with
// no store at hand; the CLI knows which argument is a plugin name and can ask
// `ListPlugins` itself. A dozen lines of Levenshtein do not justify a crate.

use anyhow::Result;
use broker_proto::admin::v1::ListPluginsRequest;
use tonic::{Code, Status};

use super::commands::Session;

/// Most edits a suggestion may be away from the typed name.
const MAX_DISTANCE: usize = 2;

/// Most names suggested at once.
const MAX_SUGGESTIONS: usize = 3;

/// `result` unchanged, unless it is a NOT_FOUND about `name` and installed plugins
/// come close: then the same status with `(did you mean "x"?)` appended.
pub async fn plugin_name<T>(session: &Session, name: Option<&str>, result: Result<T>) -> Result<T> {
    let Err(err) = result else { return result };
    let (Some(name), Some(status)) = (name, err.downcast_ref::<Status>()) else {
        return Err(err);
    };
    if status.code() != Code::NotFound {
        return Err(err);
    }
    let Some(hint) = hint_for(session, name).await else {
        return Err(err);
    };
    let message = format!("{} ({hint})", status.message());
    Err(Status::new(Code::NotFound, message).into())
}

/// The hint for `name`, or `None` when nothing is close or the list cannot be read
/// (the original error is what matters then).
async fn hint_for(session: &Session, name: &str) -> Option<String> {
    let mut admin = session.connect().await.ok()?;
    let list = admin
        .list_plugins(ListPluginsRequest {})
        .await
        .ok()?
        .into_inner();
    let names: Vec<&str> = list.plugins.iter().map(|p| p.name.as_str()).collect();
    // An installed name means the NOT_FOUND was about something else (a command).
    if names.contains(&name) {
        return None;
    }
    did_you_mean(&closest(name, &names))
}

/// `did you mean "a"?` or `did you mean "a" or "b"?`; `None` for no candidates.
fn did_you_mean(candidates: &[&str]) -> Option<String> {
    let quoted: Vec<String> = candidates
        .iter()
        .map(|c| format!("\"{}\"", super::output::escape_line(c)))
        .collect();
    match quoted.split_last() {
        None => None,
        Some((last, [])) => Some(format!("did you mean {last}?")),
        Some((last, rest)) => Some(format!("did you mean {} or {last}?", rest.join(", "))),
    }
}

/// Installed names close to `typed`, closest first (ties by name).
fn closest<'a>(typed: &str, names: &[&'a str]) -> Vec<&'a str> {
    let mut scored: Vec<(usize, &str)> = names
        .iter()
        .filter_map(|&n| {
            let d = levenshtein(typed, n);
            let prefix = !typed.is_empty() && (n.starts_with(typed) || typed.starts_with(n));
            (d <= MAX_DISTANCE || prefix).then_some((d, n))
        })
        .collect();
    scored.sort();
    scored
        .into_iter()
        .take(MAX_SUGGESTIONS)
        .map(|(_, n)| n)
        .collect()
}

/// Edits (insert, delete, substitute a char) turning `a` into `b`.
fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitute = diagonal + usize::from(ca != *cb);
            diagonal = row[j + 1];
            row[j + 1] = substitute.min(row[j] + 1).min(diagonal + 1);
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levenshtein_counts_edits() {
        assert_eq!(levenshtein("helo", "hello"), 1);
        assert_eq!(levenshtein("hello", "hello"), 0);
        assert_eq!(levenshtein("", "abc"), 3);
        assert_eq!(levenshtein("kitten", "sitting"), 3);
        assert_eq!(levenshtein("ehllo", "hello"), 2);
    }

    #[test]
    fn close_names_and_prefixes_are_suggested_closest_first() {
        let names = ["hello", "help", "echo", "reports-exporter"];
        assert_eq!(closest("helo", &names), ["hello", "help"]);
        assert_eq!(closest("reports", &names), ["reports-exporter"]);
        assert!(closest("zzzzzz", &names).is_empty());
    }

    #[test]
    fn the_hint_reads_naturally() {
        assert_eq!(did_you_mean(&[]), None);
        assert_eq!(
            did_you_mean(&["hello"]).as_deref(),
            Some("did you mean \"hello\"?")
        );
        assert_eq!(
            did_you_mean(&["a", "b", "c"]).as_deref(),
            Some("did you mean \"a\", \"b\" or \"c\"?")
        );
    }
}
