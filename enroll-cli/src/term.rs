//! Terminal input: reading a secret or a code from stdin or the terminal.

use std::io::{BufRead, IsTerminal, Write};
use zeroize::Zeroizing;

/// Prints `prompt` on stderr and reads one line from stdin (the terminal or a
/// pipe). `None` at end of input.
pub fn read_line(prompt: &str) -> Result<Option<Zeroizing<String>>, String> {
    if !prompt.is_empty() {
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
