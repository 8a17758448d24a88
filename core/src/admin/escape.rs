//! Showing text that came from a file or an account on a terminal.
//!
//! A user writes their own secret file; root runs `otpgate audit` and
//! `otpgate status --user`. Anything from that file (a key name in an error,
//! a `kdf` value, a device name) or from an account entry must not reach
//! root's terminal raw: an escape sequence could redraw the screen, forge
//! table rows or hide a problem. Text output passes such strings through
//! [`for_terminal`]; JSON output stays exact (serde escapes control
//! characters itself).

use std::borrow::Cow;

/// Whether `c` can change what a terminal shows beyond printing itself:
/// C0 and C1 control characters (ESC, CR, LF, BS…), DEL, and the Unicode
/// bidirectional and invisible formatting marks.
fn unsafe_char(c: char) -> bool {
    c.is_control()
        || matches!(c,
            '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2069}' | '\u{FEFF}')
}

/// `text` with every character that could act on a terminal written as a
/// visible escape (`\u{1b}`, `\n`); everything else, including non-ASCII
/// letters, unchanged.
pub fn for_terminal(text: &str) -> Cow<'_, str> {
    if !text.chars().any(unsafe_char) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if unsafe_char(c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_and_bidi_characters_are_made_visible() {
        assert_eq!(for_terminal("alice"), "alice");
        assert_eq!(for_terminal("Jörg – ok"), "Jörg – ok");
        assert_eq!(for_terminal("\u{1b}[2Jx"), "\\u{1b}[2Jx");
        assert_eq!(for_terminal("a\nb\rc\td"), "a\\nb\\rc\\td");
        assert_eq!(for_terminal("\u{9b}31m"), "\\u{9b}31m");
        assert_eq!(for_terminal("x\u{202e}y"), "x\\u{202e}y");
        assert_eq!(for_terminal("\u{7f}"), "\\u{7f}");
    }
}
