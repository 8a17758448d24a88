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
