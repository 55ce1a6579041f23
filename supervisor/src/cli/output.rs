//! Terminal rendering for the `plexichat` CLI: aligned text tables, key/value
//! blocks, escaping of untrusted text, and Unix-millisecond timestamp formatting.

use time::format_description::FormatItem;
use time::macros::format_description;
use time::OffsetDateTime;

/// Separator between table columns.
const GAP: &str = "  ";

/// Placeholder for an empty cell, so columns never look shifted.
pub const NONE: &str = "-";

const SECONDS_UTC: &[FormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
const MILLIS_UTC: &[FormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");

/// A plain-text table: a header row plus data rows, columns padded to the
/// widest cell. Cells are escaped on insertion, so plugin-supplied text
/// (justifications, comments) can neither break the layout nor smuggle
/// terminal escape sequences past the operator reviewing it.
pub struct Table {
    headers: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(headers: &[&str]) -> Self {
        Self {
            headers: headers.iter().map(|h| h.to_string()).collect(),
            rows: Vec::new(),
        }
    }

    /// Adds a row; missing cells render empty, extra cells are dropped.
    pub fn row<I, S>(&mut self, cells: I)
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut row: Vec<String> = cells
            .into_iter()
            .take(self.headers.len())
            .map(|c| escape_line(c.as_ref()))
            .collect();
        row.resize(self.headers.len(), String::new());
        self.rows.push(row);
    }

    /// Renders header and rows, one line each, with a trailing newline.
    pub fn render(&self) -> String {
        let widths = self.widths();
        let mut out = String::new();
        for row in std::iter::once(&self.headers).chain(&self.rows) {
            out.push_str(&render_row(row, &widths));
            out.push('\n');
        }
        out
    }

    fn widths(&self) -> Vec<usize> {
        let mut widths: Vec<usize> = self.headers.iter().map(|h| display_width(h)).collect();
        for row in &self.rows {
            for (width, cell) in widths.iter_mut().zip(row) {
                *width = (*width).max(display_width(cell));
            }
        }
        widths
    }
}

fn render_row(cells: &[String], widths: &[usize]) -> String {
    let last = cells.len().saturating_sub(1);
    let mut line = String::new();
    for (i, (cell, width)) in cells.iter().zip(widths).enumerate() {
        line.push_str(cell);
        // The last column is not padded: trailing blanks only hurt `grep`/`diff`.
        if i < last {
            let pad = width - display_width(cell);
            line.extend(std::iter::repeat_n(' ', pad));
            line.push_str(GAP);
        }
    }
    line
}

/// Width in terminal columns, approximated as one column per char.
fn display_width(s: &str) -> usize {
    s.chars().count()
}

/// Renders `key: value` lines with the values aligned, skipping nothing:
/// callers decide which optional fields to include.
pub fn key_values(pairs: &[(&str, String)]) -> String {
    let width = pairs.iter().map(|(k, _)| k.len() + 1).max().unwrap_or(0);
    let mut out = String::new();
    for (key, value) in pairs {
        let label = format!("{key}:");
        out.push_str(&format!("{label:<width$} {}\n", escape_line(value)));
    }
    out
}

/// Escapes every control character (newlines included) so the text stays on
/// one line and cannot drive the terminal.
pub fn escape_line(s: &str) -> String {
    escape_controls(s, |_| false)
}

/// Like [`escape_line`] but keeps newlines and tabs: for multi-line plugin
/// output that should read as text yet still must not emit escape sequences.
pub fn escape_text(s: &str) -> String {
    escape_controls(s, |c| c == '\n' || c == '\t')
}

fn escape_controls(s: &str, keep: impl Fn(char) -> bool) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_control() && !keep(c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// `value`, or "-" when it is empty.
pub fn or_none(value: &str) -> String {
    if value.is_empty() {
        NONE.to_string()
    } else {
        value.to_string()
    }
}

/// Comma-joined list (no blanks, so a table cell stays one word), or "-"
/// when empty.
pub fn join_or_none(items: &[String]) -> String {
    or_none(&items.join(","))
}

/// RFC 3339 UTC at second precision; "-" for 0 (the protocol's "none").
pub fn format_ms(ms: i64) -> String {
    format_with(ms, SECONDS_UTC)
}

/// RFC 3339 UTC at millisecond precision; "-" for 0. Used where ordering of
/// close events matters (audit, event streams).
pub fn format_ms_precise(ms: i64) -> String {
    format_with(ms, MILLIS_UTC)
}

fn format_with(ms: i64, format: &[FormatItem<'_>]) -> String {
    if ms == 0 {
        return NONE.to_string();
    }
    let nanos = i128::from(ms) * 1_000_000;
    OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .ok()
        .and_then(|t| t.format(format).ok())
        // An out-of-range value from the daemon is shown raw rather than hidden.
        .unwrap_or_else(|| format!("{ms}ms"))
}

/// Byte counts in binary units, as limits are usually written (256 MiB).
pub fn format_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if value.fract() == 0.0 {
        format!("{value} {}", UNITS[unit])
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// Who signed a plugin, as the tables show it: `acme (SHA256:…)`, `unsigned`, and a
/// revoked or removed key said so in capitals.
pub fn signer_text(signer: Option<&broker_proto::admin::v1::Signer>) -> String {
    use broker_proto::admin::v1::TrustState;
    let Some(s) = signer else {
        return "unsigned".into();
    };
    let who = format!("{} ({})", s.publisher, s.fingerprint);
    match TrustState::try_from(s.key_state) {
        Ok(TrustState::Revoked) => format!("KEY REVOKED: {who}"),
        Ok(TrustState::Removed) => format!("{who}, key removed"),
        _ => who,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_pads_columns_to_widest_cell() {
        let mut t = Table::new(&["NAME", "VERSION", "STATE"]);
        t.row(["echo", "1.0.0", "enabled"]);
        t.row(["a-much-longer-name", "2", "disabled"]);
        assert_eq!(
            t.render(),
            "NAME                VERSION  STATE\n\
             echo                1.0.0    enabled\n\
             a-much-longer-name  2        disabled\n"
        );
    }

    #[test]
    fn table_has_no_trailing_blanks_and_fills_missing_cells() {
        let mut t = Table::new(&["A", "B"]);
        t.row(["x"]);
        t.row(["y", "z", "dropped"]);
        assert_eq!(t.render(), "A  B\nx  \ny  z\n");
    }

    #[test]
    fn table_counts_chars_not_bytes() {
        let mut t = Table::new(&["N", "X"]);
        t.row(["né", "1"]);
        t.row(["abc", "2"]);
        assert_eq!(t.render(), "N    X\nné   1\nabc  2\n");
    }

    #[test]
    fn table_escapes_control_characters() {
        let mut t = Table::new(&["JUSTIFICATION"]);
        t.row(["line1\nline2\u{1b}[2J"]);
        assert_eq!(t.render(), "JUSTIFICATION\nline1\\nline2\\u{1b}[2J\n");
    }

    #[test]
    fn escape_text_keeps_newlines_and_tabs_only() {
        assert_eq!(escape_text("a\tb\nc\u{7}"), "a\tb\nc\\u{7}");
    }

    #[test]
    fn key_values_align() {
        let out = key_values(&[("name", "echo".into()), ("state reason", "x".into())]);
        assert_eq!(out, "name:         echo\nstate reason: x\n");
    }

    #[test]
    fn formats_milliseconds_as_rfc3339_utc() {
        assert_eq!(format_ms(0), "-");
        assert_eq!(format_ms(1_800_000_000_123), "2027-01-15T08:00:00Z");
        assert_eq!(
            format_ms_precise(1_800_000_000_123),
            "2027-01-15T08:00:00.123Z"
        );
        assert_eq!(
            format_ms_precise(1_800_000_000_000),
            "2027-01-15T08:00:00.000Z"
        );
        assert_eq!(format_ms(i64::MAX), format!("{}ms", i64::MAX));
    }

    #[test]
    fn formats_bytes_in_binary_units() {
        assert_eq!(format_bytes(512), "512 B");
        assert_eq!(format_bytes(256 * 1024 * 1024), "256 MiB");
        assert_eq!(format_bytes(1536), "1.5 KiB");
    }

    #[test]
    fn empty_values_become_dash() {
        assert_eq!(or_none(""), "-");
        assert_eq!(join_or_none(&[]), "-");
        assert_eq!(join_or_none(&["a".into(), "b".into()]), "a,b");
    }
}
