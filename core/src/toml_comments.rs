//! Making the one TOML parser's work smaller. `toml` lexes and validates
//! every comment byte by byte through its event machinery, and every line
//! break; on the shipped, fully commented config that was most of the
//! parse on every login. Whole comment lines are left out before the text
//! reaches it — the only parser stays `toml`, which still sees every key,
//! value and table — and a text that does not parse is parsed again as
//! written, so an error and its line number are the file's own.

use serde::de::DeserializeOwned;
use std::borrow::Cow;

/// `toml::from_str` of `text`, read without its whole-line comments; on
/// an error, the error of `text` as written (its line numbers).
pub fn from_str<T: DeserializeOwned>(text: &str) -> Result<T, toml::de::Error> {
    toml::from_str(&without_comment_lines(text)).or_else(|_| toml::from_str(text))
}

/// `text` without its whole-line comments (first non-blank character `#`),
/// line breaks and all. Exact: outside a multi-line string a line
/// starting with `#` can only be a comment (basic and literal strings and
/// inline tables end on their line; arrays may hold comments), and only a
/// `"""` or `'''` on a line that is not a comment can open one, so text
/// with such a line is returned unchanged. A comment line holding a
/// character TOML forbids in comments (a control character other than tab)
/// is kept, for `toml` to reject as before. A text whose lean form would
/// start with a byte-order mark it did not start with is returned
/// unchanged: `toml` allows the mark only first.
pub fn without_comment_lines(text: &str) -> Cow<'_, str> {
    // This runs on every login over the whole config file: each line is
    // scanned once, skipping ordinary bytes through a table.
    let b = text.as_bytes();
    let mut out: Vec<u8> = Vec::new();
    let mut copied = 0;
    let mut i = 0;
    while i < b.len() {
        let line_start = i;
        while matches!(b.get(i), Some(b' ' | b'\t')) {
            i += 1;
        }
        let comment = b.get(i) == Some(&b'#');
        let mut forbidden = false;
        if comment {
            loop {
                // Most of the file: skip to the next control character.
                i += first_control(b.get(i..).unwrap_or_default());
                match b.get(i) {
                    None | Some(b'\n') => break,
                    Some(b'\r') if b.get(i + 1) == Some(&b'\n') => {}
                    Some(_) => forbidden = true,
                }
                i += 1;
            }
        } else {
            loop {
                let rest = b.get(i..).unwrap_or_default();
                i += rest
                    .iter()
                    .position(|&c| SPECIAL[usize::from(c)])
                    .unwrap_or(rest.len());
                let Some(&c) = b.get(i) else { break };
                match c {
                    b'\n' => break,
                    b'"' | b'\'' => {
                        let run = b
                            .get(i..)
                            .unwrap_or_default()
                            .iter()
                            .take_while(|&&q| q == c)
                            .count();
                        if run >= 3 {
                            // Maybe a multi-line string: leave the text alone.
                            return Cow::Borrowed(text);
                        }
                        i += run;
                    }
                    // A control character: toml judges it where it stands.
                    _ => i += 1,
                }
            }
        }
        // [line_start, i) is the line, without its LF.
        if comment && !forbidden {
            if out.capacity() == 0 {
                out.reserve(b.len());
            }
            out.extend_from_slice(b.get(copied..line_start).unwrap_or_default());
            // Past the line's LF (or the end).
            copied = i + 1;
        }
        i += 1;
    }
    if copied == 0 {
        return Cow::Borrowed(text);
    }
    out.extend_from_slice(b.get(copied..).unwrap_or_default());
    // toml skips a byte-order mark only at the start of the text: one that
    // leaving the first lines out brought there must stay an error.
    if out.starts_with(BOM) && !b.starts_with(BOM) {
        return Cow::Borrowed(text);
    }
    // Whole lines were left out, cut at ASCII bytes: still UTF-8.
    match String::from_utf8(out) {
        Ok(s) => Cow::Owned(s),
        Err(_) => Cow::Borrowed(text),
    }
}

/// U+FEFF in UTF-8.
const BOM: &[u8] = "\u{feff}".as_bytes();

/// The index of the first byte below 0x20 or equal to 0x7f (or the length):
/// eight bytes at a time, then byte by byte within the eight that hold one.
fn first_control(b: &[u8]) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let mut i = 0;
    for chunk in b.chunks_exact(8) {
        // A failed conversion (impossible) reads as zeros: "maybe here".
        let x = <[u8; 8]>::try_from(chunk).map_or(0, u64::from_le_bytes);
        let below_space = x.wrapping_sub(ONES * 0x20) & !x & HIGH;
        let del = x ^ (ONES * 0x7f);
        let is_del = del.wrapping_sub(ONES) & !del & HIGH;
        if below_space | is_del != 0 {
            break;
        }
        i += 8;
    }
    let rest = b.get(i..).unwrap_or_default();
    i + rest
        .iter()
        .position(|&c| c < 0x20 || c == 0x7f)
        .unwrap_or(rest.len())
}

/// The bytes a line scan stops at: the control characters TOML forbids in
/// comments (all but tab; CR is allowed only before LF), LF itself, and
/// quotes (three in a row may open a multi-line string).
static SPECIAL: [bool; 256] = {
    let mut t = [false; 256];
    let mut c = 0;
    while c < 0x20 {
        t[c] = true;
        c += 1;
    }
    t[b'\t' as usize] = false;
    t[0x7f] = true;
    t[b'"' as usize] = true;
    t[b'\'' as usize] = true;
    t
};

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct T {
        a: i64,
        #[serde(default)]
        m: Vec<String>,
        #[serde(default)]
        s: String,
    }

    /// `toml` on the text as written, and [`from_str`].
    fn both(text: &str) -> (Result<T, String>, Result<T, String>) {
        let plain = toml::from_str::<T>(text).map_err(|e| e.to_string());
        let lean = from_str::<T>(text).map_err(|e| e.to_string());
        (plain, lean)
    }

    #[test]
    fn the_parse_is_the_same_with_and_without_comment_lines() {
        for text in [
            "# c\na = 1\n",
            "  # indented\r\n\ta = 2 # trailing stays\r\n",
            "m = [\n  # inside an array\n  \"x\", # after a value\n]\na = 3\n",
            "s = \"# not a comment\"\na = 4\n",
            "s = \"\"\"\n# inside a multi-line string\n\"\"\"\na = 5\n",
            "s = '''\n# inside a literal one\n'''\na = 6\n",
            "a = 7\n# no newline at the end",
        ] {
            let (plain, lean) = both(text);
            assert!(plain.is_ok(), "{text:?}: {plain:?}");
            assert_eq!(plain, lean, "{text:?}");
            // And the lean text itself parses the same (no fallback hides it).
            let direct =
                toml::from_str::<T>(&without_comment_lines(text)).map_err(|e| e.to_string());
            assert_eq!(plain, direct, "{text:?}");
        }
        let s = toml::from_str::<T>(&without_comment_lines(
            "s = \"\"\"\n# kept\n\"\"\"\na = 1\n",
        ))
        .unwrap()
        .s;
        assert_eq!(s, "# kept\n");
    }

    #[test]
    fn errors_are_the_same_and_on_the_same_line() {
        for text in [
            "# c\n# d\na = \n",
            "# c\na = 1\na = 2\n",
            "# a comment with a control character \u{1}\na = 1\n",
            "# c\n# d\nunknown = 1\na = 1\n",
            // A byte-order mark is only skipped at the start of the text:
            // leaving the comments before it out must not move it there.
            "# c\n\u{feff}a = 1\n",
            "# c\n  # d\n\u{feff}# e\na = 1\n",
        ] {
            let (plain, lean) = both(text);
            assert!(plain.is_err(), "{text:?}");
            assert_eq!(plain, lean, "{text:?}");
        }
    }

    #[test]
    fn control_characters_are_found_at_any_position() {
        let base = vec![b'a'; 40];
        assert_eq!(first_control(&base), 40);
        let high = [0xc3, 0xa9, 0xff, 0x80, b'a', b'b', b'c', b'd', b'e'];
        assert_eq!(first_control(&high), 9);
        for at in 0..40 {
            for c in [0u8, 0x09, 0x0a, 0x0d, 0x1f, 0x7f] {
                let mut t = base.clone();
                t[at] = c;
                assert_eq!(first_control(&t), at, "{c:#x} at {at}");
            }
        }
        // A comment holding a multi-line opener is still a comment.
        assert_eq!(without_comment_lines("# a \"\"\" b\na = 1\n"), "a = 1\n");
    }

    #[test]
    fn text_without_comment_lines_is_not_copied() {
        assert!(matches!(
            without_comment_lines("a = 1 # x\n"),
            Cow::Borrowed(_)
        ));
        assert!(matches!(without_comment_lines("a = 1\n"), Cow::Borrowed(_)));
        assert_eq!(without_comment_lines("# x\r\na = 1\n"), "a = 1\n");
        assert_eq!(
            without_comment_lines("a = 1\n  # x\n\t# y\nb = 2\n# z"),
            "a = 1\nb = 2\n"
        );
        // A comment line with a control character stays, for toml to refuse.
        assert_eq!(
            without_comment_lines("# \u{1}\n# x\na = 1\n"),
            "# \u{1}\na = 1\n"
        );
    }
}
