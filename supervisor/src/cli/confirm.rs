//! Confirmation before commands that destroy data (`plugin remove`, `restore`):
//! `--yes` skips it, a terminal is asked `[y/N]`, anything else is refused.

use std::io::{self, BufRead, IsTerminal, Write};

use anyhow::{bail, Context, Result};

/// Whether the user agreed to `question`; called before connecting, so a refusal
/// changes nothing.
pub fn confirm(question: &str, yes: bool) -> Result<()> {
    if yes {
        return Ok(());
    }
    let stdin = io::stdin();
    if !stdin.is_terminal() {
        // A script must say so: an answer read from a pipe may not be meant for us.
        bail!("refused: {question} needs confirmation; stdin is not a terminal, pass --yes to confirm (nothing was changed)");
    }
    let mut stderr = io::stderr();
    write!(stderr, "{question}? [y/N] ").context("asking for confirmation")?;
    stderr.flush().context("asking for confirmation")?;
    let mut answer = String::new();
    stdin
        .lock()
        .read_line(&mut answer)
        .context("reading the confirmation")?;
    if agreed(&answer) {
        Ok(())
    } else {
        bail!("not confirmed: nothing was changed")
    }
}

/// `y` or `yes`, any case; everything else (an empty line too) is no.
fn agreed(answer: &str) -> bool {
    matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_yes_agrees() {
        for a in ["y\n", "Y", " yes \n", "YES"] {
            assert!(agreed(a), "{a:?}");
        }
        for a in ["", "\n", "n", "no", "yep", "y es"] {
            assert!(!agreed(a), "{a:?}");
        }
    }

    #[test]
    fn yes_skips_the_question() {
        assert!(confirm("remove plugin x and delete its data", true).is_ok());
    }
}
