//! `plexichat monitor plugins`: per plugin CPU, memory, pids, brokered calls,
//! denials, restarts and open alerts, as a table from two samples or, with
//! `--real-time`, a refreshing terminal UI (ratatui) like systemd-cgtop.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use broker_proto::admin::v1::{MonitorRequest, MonitorResponse, PluginUsage};
use broker_proto::label::label;
use ratatui::crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};
use ratatui::crossterm::{execute, terminal};
use ratatui::layout::Constraint;
use ratatui::style::{Modifier, Style};
use ratatui::widgets::{Block, Borders, Row, Table as TuiTable};

use super::client::Admin;
use super::columns;
use super::commands::{emit, Session};
use super::output::{format_bytes, Table};
use super::OutputFormat;

const HEADERS: [&str; 13] = [
    "PLUGIN", "STATE", "RUNTIME", "PID", "CPU%", "BROKER%", "MEMORY", "MEM%", "PIDS", "CALLS",
    "DENIALS", "RESTARTS", "ALERTS",
];

async fn sample(admin: &mut Admin, plugin: &str) -> Result<MonitorResponse> {
    Ok(admin
        .monitor(MonitorRequest {
            plugin: plugin.to_string(),
        })
        .await?
        .into_inner())
}

/// CPU use between two samples of a counter in microseconds, in percent of one core.
fn percent_of_core(before: Option<u64>, now: u64, elapsed_ms: i64) -> f64 {
    let Some(before) = before else { return 0.0 };
    if elapsed_ms <= 0 || now < before {
        return 0.0;
    }
    (now - before) as f64 / (elapsed_ms as f64 * 10.0)
}

/// The plugin's own CPU use (its cgroup) between two samples.
fn cpu_percent(before: Option<&PluginUsage>, now: &PluginUsage, elapsed_ms: i64) -> f64 {
    percent_of_core(before.map(|b| b.cpu_usec), now.cpu_usec, elapsed_ms)
}

/// One display row per plugin of `now`, CPU measured against `before`.
fn rows(before: &MonitorResponse, now: &MonitorResponse) -> Vec<[String; 13]> {
    let elapsed = now.ts_ms - before.ts_ms;
    now.plugins
        .iter()
        .map(|p| {
            let prev = before.plugins.iter().find(|b| b.name == p.name);
            let calls: u64 = p.calls.values().sum();
            let mem_pct = if p.memory_limit > 0 {
                format!(
                    "{:.1}",
                    p.memory_bytes as f64 * 100.0 / p.memory_limit as f64
                )
            } else {
                "-".into()
            };
            [
                p.name.clone(),
                label(p.state()),
                label(p.runtime()),
                if p.pid > 0 {
                    p.pid.to_string()
                } else {
                    "-".into()
                },
                format!("{:.1}", cpu_percent(prev, p, elapsed)),
                format!(
                    "{:.1}",
                    percent_of_core(prev.map(|b| b.broker_cpu_usec), p.broker_cpu_usec, elapsed)
                ),
                format_bytes(p.memory_bytes),
                mem_pct,
                format!("{}/{}", p.pids, p.pids_limit),
                calls.to_string(),
                p.denials.to_string(),
                p.restarts.to_string(),
                p.open_alerts.to_string(),
            ]
        })
        .collect()
}

pub async fn plugins(
    session: &Session,
    plugin: Option<String>,
    real_time: bool,
    interval: Duration,
) -> Result<()> {
    let plugin = plugin.unwrap_or_default();
    let mut admin = session.connect().await?;
    if real_time {
        return live(&mut admin, &plugin, interval).await;
    }
    let before = sample(&mut admin, &plugin).await?;
    tokio::time::sleep(interval).await;
    let now = sample(&mut admin, &plugin).await?;
    if session.format() == OutputFormat::Json {
        return emit(&super::json::render(&now, true)?);
    }
    if now.plugins.is_empty() {
        return emit("no plugins installed");
    }
    let mut table = Table::new(&HEADERS);
    for row in rows(&before, &now) {
        table.row(row);
    }
    emit(&table.render())
}

/// Leaves raw mode and the alternate screen however the UI ends.
struct TerminalGuard;

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        let _ = terminal::disable_raw_mode();
        let _ = execute!(std::io::stdout(), terminal::LeaveAlternateScreen);
    }
}

/// How the live table is ordered; `s` cycles through them.
#[derive(Clone, Copy)]
enum SortBy {
    Cpu,
    Memory,
    Name,
}

impl SortBy {
    fn next(self) -> SortBy {
        match self {
            SortBy::Cpu => SortBy::Memory,
            SortBy::Memory => SortBy::Name,
            SortBy::Name => SortBy::Cpu,
        }
    }

    fn label(self) -> &'static str {
        match self {
            SortBy::Cpu => "cpu",
            SortBy::Memory => "memory",
            SortBy::Name => "name",
        }
    }

    fn sort(self, rows: &mut [[String; 13]], now: &MonitorResponse) {
        let memory = |name: &str| {
            now.plugins
                .iter()
                .find(|p| p.name == name)
                .map_or(0, |p| p.memory_bytes)
        };
        match self {
            SortBy::Cpu => rows.sort_by(|a, b| {
                let (x, y) = (
                    a[4].parse::<f64>().unwrap_or(0.0),
                    b[4].parse::<f64>().unwrap_or(0.0),
                );
                y.total_cmp(&x).then(a[0].cmp(&b[0]))
            }),
            SortBy::Memory => {
                rows.sort_by(|a, b| memory(&b[0]).cmp(&memory(&a[0])).then(a[0].cmp(&b[0])))
            }
            SortBy::Name => rows.sort_by(|a, b| a[0].cmp(&b[0])),
        }
    }
}

async fn live(admin: &mut Admin, plugin: &str, interval: Duration) -> Result<()> {
    let mut before = sample(admin, plugin).await?;
    terminal::enable_raw_mode().context("the real-time view needs a terminal")?;
    let _guard = TerminalGuard;
    execute!(std::io::stdout(), terminal::EnterAlternateScreen)?;
    let mut term =
        ratatui::Terminal::new(ratatui::backend::CrosstermBackend::new(std::io::stdout()))?;
    let mut sort = SortBy::Cpu;
    let mut now = before.clone();
    let mut next_sample = Instant::now();
    loop {
        if Instant::now() >= next_sample {
            before = std::mem::replace(&mut now, sample(admin, plugin).await?);
            next_sample = Instant::now() + interval;
        }
        let mut table_rows = rows(&before, &now);
        sort.sort(&mut table_rows, &now);
        let (title, summary) = (
            format!("plexichat monitor: {} plugin(s)", now.plugins.len()),
            [
                format!("every {}", humantime::format_duration(interval)),
                format!("sorted by {}", sort.label()),
                "s: sort, q: quit".to_string(),
            ],
        );
        term.draw(|frame| {
            let area = frame.area();
            let inner = area.width.saturating_sub(2);
            let view = LiveTable::new(table_rows, inner);
            let mut block = Block::default()
                .borders(Borders::ALL)
                .title(title_within(&title, &summary, inner));
            if view.fit.hidden > 0 {
                block = block.title_bottom(hidden_note(view.fit.hidden, inner));
            }
            frame.render_widget(view.widget().block(block), area);
        })?;
        if event::poll(Duration::from_millis(100))? {
            if let Event::Key(key) = event::read()? {
                let ctrl_c =
                    key.code == KeyCode::Char('c') && key.modifiers.contains(KeyModifiers::CONTROL);
                match key.code {
                    _ if key.kind != KeyEventKind::Press => {}
                    KeyCode::Char('q') | KeyCode::Esc => return Ok(()),
                    _ if ctrl_c => return Ok(()),
                    KeyCode::Char('s') => sort = sort.next(),
                    _ => {}
                }
            }
        }
    }
}

/// Column indexes from most to least important: on a narrow terminal the view drops
/// columns from the end of this list rather than cut a figure.
const PRIORITY: [usize; 13] = [0, 1, 3, 4, 6, 2, 7, 12, 10, 11, 8, 9, 5];

/// Space between columns (ratatui's default).
const SPACING: u16 = 1;

/// The live table's rows fitted to the terminal's width.
struct LiveTable {
    rows: Vec<[String; 13]>,
    fit: columns::Fit,
}

impl LiveTable {
    fn new(rows: Vec<[String; 13]>, width: u16) -> Self {
        let natural: Vec<u16> = (0..HEADERS.len())
            .map(|c| {
                rows.iter()
                    .map(|r| columns::cells(&r[c]))
                    .chain([columns::cells(HEADERS[c])])
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let fit = columns::fit(&natural, &PRIORITY, width, SPACING);
        Self { rows, fit }
    }

    /// Only the shown columns; text wider than its column (a plugin name on a very
    /// narrow terminal) ends in a visible `…` instead of being silently cut.
    fn cells(&self, row: &[String; 13]) -> Vec<String> {
        self.fit
            .shown
            .iter()
            .zip(&self.fit.widths)
            .map(|(&c, &w)| columns::abbreviate(&row[c], w))
            .collect()
    }

    fn widget(&self) -> TuiTable<'static> {
        let header: Vec<String> = self.cells(&HEADERS.map(String::from));
        let header = Row::new(header).style(Style::default().add_modifier(Modifier::BOLD));
        let rows: Vec<Row> = self.rows.iter().map(|r| Row::new(self.cells(r))).collect();
        let widths = self.fit.widths.iter().map(|&w| Constraint::Length(w));
        TuiTable::new(rows, widths)
            .header(header)
            .column_spacing(SPACING)
    }
}

/// The title with as many of the `extra` parts as fit in `width`, whole or not at all.
fn title_within(head: &str, extra: &[String], width: u16) -> String {
    let mut title = format!(" {head} ");
    for part in extra {
        let longer = format!("{}, {part} ", title.trim_end());
        if columns::cells(&longer) > width {
            break;
        }
        title = longer;
    }
    columns::abbreviate(&title, width)
}

/// The footer saying columns are missing, shortened to fit.
fn hidden_note(hidden: usize, width: u16) -> String {
    let long = format!(" {hidden} column(s) hidden: widen the terminal ");
    if columns::cells(&long) <= width {
        long
    } else {
        columns::abbreviate(&format!(" {hidden} hidden "), width)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usage(name: &str, cpu_usec: u64) -> PluginUsage {
        PluginUsage {
            name: name.into(),
            cpu_usec,
            memory_bytes: 64 << 20,
            memory_limit: 256 << 20,
            calls: [("file_read".to_string(), 2), ("http".to_string(), 3)]
                .into_iter()
                .collect(),
            ..PluginUsage::default()
        }
    }

    #[test]
    fn cpu_is_the_share_of_one_core_between_samples() {
        let before = MonitorResponse {
            ts_ms: 1_000,
            plugins: vec![usage("a", 1_000_000)],
        };
        let now = MonitorResponse {
            ts_ms: 2_000,
            plugins: vec![usage("a", 1_500_000), usage("new", 9_000_000)],
        };
        let rows = rows(&before, &now);
        assert_eq!(rows[0][4], "50.0", "0.5 s of CPU in 1 s");
        assert_eq!(rows[0][5], "0.0", "no broker work");
        assert_eq!(rows[0][7], "25.0", "64 of 256 MiB");
        assert_eq!(rows[0][9], "5", "calls of every service");
        assert_eq!(rows[1][4], "0.0", "no earlier sample");
    }
}
