//! `plexichat completions SHELL` and `plexichat manpage`: shell completions and a roff
//! man page generated from the clap definition, for the installer to write out.

use std::path::Path;

use anyhow::{Context, Result};
use clap::{CommandFactory, ValueEnum};

use super::commands::emit;
use super::Cli;

/// The shells completions are generated for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
}

impl Shell {
    fn generator(self) -> clap_complete::Shell {
        match self {
            Shell::Bash => clap_complete::Shell::Bash,
            Shell::Zsh => clap_complete::Shell::Zsh,
            Shell::Fish => clap_complete::Shell::Fish,
        }
    }
}

/// The completion script for `shell` on stdout.
pub fn completions(shell: Shell) -> Result<()> {
    emit(&completion(shell)?)
}

/// Rendered in memory: the generators panic on a write error, and stdout may be a
/// closed pipe, which `emit` reports properly.
fn completion(shell: Shell) -> Result<String> {
    let mut out = Vec::new();
    clap_complete::generate(
        shell.generator(),
        &mut Cli::command(),
        "plexichat",
        &mut out,
    );
    Ok(String::from_utf8(out)?)
}

/// The man page, plexichat(1), on stdout; with `dir`, it and one page per
/// subcommand (`plexichat-plugin-remove.1`, ...) written there, their names printed.
pub fn manpage(dir: Option<&Path>) -> Result<()> {
    let Some(dir) = dir else {
        let mut out = Vec::new();
        clap_mangen::Man::new(Cli::command()).render(&mut out)?;
        return emit(&String::from_utf8(out)?);
    };
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    clap_mangen::generate_to(Cli::command(), dir)
        .with_context(|| format!("writing man pages into {}", dir.display()))?;
    let mut pages: Vec<String> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("plexichat") && n.ends_with(".1"))
        .collect();
    pages.sort();
    emit(&pages.join("\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn completions_know_the_subcommands_and_flags() {
        for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
            let script = completion(shell).unwrap();
            for word in ["plugin", "remove", "yes", "real-time", "exclude-plugins"] {
                assert!(script.contains(word), "{shell:?} lacks {word}");
            }
        }
        assert!(completion(Shell::Bash).unwrap().contains("complete -F"));
        assert!(completion(Shell::Zsh)
            .unwrap()
            .starts_with("#compdef plexichat"));
    }

    #[test]
    fn the_man_page_is_roff_for_plexichat_1() {
        let mut out = Vec::new();
        clap_mangen::Man::new(Cli::command())
            .render(&mut out)
            .unwrap();
        let page = String::from_utf8(out).unwrap();
        assert!(page.contains(".TH plexichat 1"), "{page}");
        assert!(page.contains("SUBCOMMANDS") || page.contains("plexichat\\-plugin"));
    }

    #[test]
    fn every_subcommand_gets_a_page_in_a_directory() {
        let dir = tempfile::tempdir().unwrap();
        manpage(Some(dir.path())).unwrap();
        let remove = std::fs::read_to_string(dir.path().join("plexichat-plugin-remove.1")).unwrap();
        assert!(remove.contains("\\-\\-yes"), "{remove}");
        assert!(dir.path().join("plexichat.1").exists());
        assert!(
            !dir.path().join("plexichat-completions.1").exists(),
            "hidden"
        );
    }
}
