//! Which columns of the real-time view fit the terminal: each shown column is as wide
//! as its widest cell, so no figure is ever cut; the lowest-priority columns go first.

/// The columns to draw, in display order, with their widths.
#[derive(Debug, PartialEq, Eq)]
pub struct Fit {
    /// Column indexes, ascending (the table's own order).
    pub shown: Vec<usize>,
    /// Width of each shown column, in the order of `shown`.
    pub widths: Vec<u16>,
    /// How many columns did not fit.
    pub hidden: usize,
}

/// Fits columns of `natural` widths (widest cell, header included) into `available`
/// cells with `spacing` between columns, taking them in `priority` order and stopping
/// at the first that does not fit, so what disappears is always the least important.
/// The first priority column is always shown, narrowed to `available` if need be
/// (it holds text, which the caller abbreviates visibly).
pub fn fit(natural: &[u16], priority: &[usize], available: u16, spacing: u16) -> Fit {
    let mut chosen: Vec<(usize, u16)> = Vec::new();
    let mut used: u16 = 0;
    for &column in priority {
        let Some(&width) = natural.get(column) else {
            continue;
        };
        let gap = if chosen.is_empty() { 0 } else { spacing };
        let need = used.saturating_add(gap).saturating_add(width);
        if chosen.is_empty() {
            let width = width.min(available);
            chosen.push((column, width));
            used = width;
        } else if need <= available {
            chosen.push((column, width));
            used = need;
        } else {
            break;
        }
    }
    let hidden = priority.len() - chosen.len();
    chosen.sort_by_key(|&(column, _)| column);
    Fit {
        shown: chosen.iter().map(|&(c, _)| c).collect(),
        widths: chosen.iter().map(|&(_, w)| w).collect(),
        hidden,
    }
}

/// `text` in at most `width` cells: unchanged if it fits, else cut with a visible `…`.
pub fn abbreviate(text: &str, width: u16) -> String {
    let width = usize::from(width);
    if text.chars().count() <= width {
        return text.to_string();
    }
    let mut out: String = text.chars().take(width.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// Cells a string takes on screen (the view's text is ASCII or one-cell symbols).
pub fn cells(text: &str) -> u16 {
    u16::try_from(text.chars().count()).unwrap_or(u16::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn everything_fits_on_a_wide_terminal() {
        let f = fit(&[6, 4, 5], &[0, 2, 1], 100, 1);
        assert_eq!(f.shown, [0, 1, 2]);
        assert_eq!(f.widths, [6, 4, 5]);
        assert_eq!(f.hidden, 0);
    }

    #[test]
    fn the_least_important_columns_go_first_and_the_rest_keep_full_width() {
        // 6 + 1 + 5 = 12 fits; adding column 1 (1 + 4) would need 17.
        let f = fit(&[6, 4, 5], &[0, 2, 1], 14, 1);
        assert_eq!(f.shown, [0, 2]);
        assert_eq!(f.widths, [6, 5]);
        assert_eq!(f.hidden, 1);
        // Stops at the first that does not fit: a narrower, less important one is
        // not shown in its place.
        let f = fit(&[6, 9, 1], &[0, 1, 2], 12, 1);
        assert_eq!(f.shown, [0]);
        assert_eq!(f.hidden, 2);
    }

    #[test]
    fn the_first_column_is_always_there_narrowed_if_need_be() {
        let f = fit(&[30, 4], &[0, 1], 10, 1);
        assert_eq!(f.shown, [0]);
        assert_eq!(f.widths, [10]);
        assert_eq!(f.hidden, 1);
    }

    #[test]
    fn abbreviating_is_visible() {
        assert_eq!(abbreviate("hello", 5), "hello");
        assert_eq!(abbreviate("reports-exporter", 8), "reports…");
        assert_eq!(cells("reports…"), 8);
    }
}
