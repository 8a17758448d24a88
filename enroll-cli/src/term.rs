//! Terminal input: reading a secret or a code from stdin or the terminal.

use std::io::{BufRead, IsTerminal, Write};
use zeroize::Zeroizing;

/// Prints `prompt` on stderr (only when stdin is a terminal: a script that
/// pipes a code in gets no prompt text mixed into its error output) and
/// reads one line from stdin. `None` at end of input.
pub fn read_line(prompt: &str) -> Result<Option<Zeroizing<String>>, String> {
    if !prompt.is_empty() && interactive() {
        eprint!("{prompt}");
        let _ = std::io::stderr().flush();
    }
    let mut line = Zeroizing::new(String::new());
    let n = std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| format!("reading standard input failed: {e}"))?;
    if n == 0 {
        return Ok(None);
    }
    let trimmed = Zeroizing::new(line.trim().to_string());
    Ok(Some(trimmed))
}

/// Whether stdin is a terminal.
pub fn interactive() -> bool {
    std::io::stdin().is_terminal()
}

/// What one typed confirmation led to.
pub enum Try<T> {
    /// Accepted: the value to go on with.
    Accepted(T),
    /// Refused: the message is printed and the next try follows.
    Refused(String),
}

/// Asks for a confirmation up to [`otpgate_core::admin::CONFIRM_TRIES`]
/// times (`prompt` gets the try's number and the number of tries) until
/// `check` accepts what was typed. `None` when the tries ran out or the
/// input ended; an error from `check` ends the asking.
pub fn confirm<T>(
    prompt: impl Fn(u32, u32) -> String,
    mut check: impl FnMut(&str) -> crate::fail::Result<Try<T>>,
) -> crate::fail::Result<Option<T>> {
    let tries = otpgate_core::admin::CONFIRM_TRIES;
    for attempt in 1..=tries {
        let Some(typed) = read_line(&prompt(attempt, tries))? else {
            break;
        };
        match check(&typed)? {
            Try::Accepted(v) => return Ok(Some(v)),
            Try::Refused(why) => eprintln!("{why}"),
        }
    }
    Ok(None)
}
