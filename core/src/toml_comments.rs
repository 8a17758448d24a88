//! Making the one TOML parser's work smaller. `toml` lexes and validates
//! every comment byte by byte through its event machinery; on the shipped,
//! fully commented config that was most of the parse on every login. Whole
//! comment lines are blanked before the text reaches it — the only parser
//! stays `toml`, which still sees every key, value and table, and a line
//! number in its error still points at the same line.

use std::borrow::Cow;

/// `text` with every whole-line comment (first non-blank character `#`)
/// reduced to its line break. Exact: outside a multi-line string a line
/// starting with `#` can only be a comment (basic and literal strings and
/// inline tables end on their line; arrays may hold comments), so text with
/// a `"""` or `'''` anywhere is returned unchanged. A comment line holding a
/// character TOML forbids in comments (a control character other than tab)
/// is kept, for `toml` to reject as before.
pub fn blank_comment_lines(text: &str) -> Cow<'_, str> {
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
                _ => {
                    // A control character; CR only as part of CRLF.
                    forbidden |= comment && !(c == b'\r' && b.get(i + 1) == Some(&b'\n'));
                    i += 1;
                }
            }
        }
        // [line_start, i) is the line, without its LF.
        if comment && !forbidden {
            out.extend_from_slice(b.get(copied..line_start).unwrap_or_default());
            if i > line_start && b.get(i - 1) == Some(&b'\r') {
                out.push(b'\r');
            }
            copied = i;
        }
        i += 1;
    }
    if copied == 0 {
        return Cow::Borrowed(text);
    }
    out.extend_from_slice(b.get(copied..).unwrap_or_default());
    // Whole lines were left out, cut at ASCII bytes: still UTF-8.
    match String::from_utf8(out) {
        Ok(s) => Cow::Owned(s),
        Err(_) => Cow::Borrowed(text),
    }
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

    fn both(text: &str) -> (Result<T, String>, Result<T, String>) {
        let plain = toml::from_str::<T>(text).map_err(|e| e.to_string());
        let lean = toml::from_str::<T>(&blank_comment_lines(text)).map_err(|e| e.to_string());
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
        }
        let s = toml::from_str::<T>(&blank_comment_lines("s = \"\"\"\n# kept\n\"\"\"\na = 1\n"))
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
        ] {
            let (plain, lean) = both(text);
            assert!(plain.is_err(), "{text:?}");
            assert_eq!(plain, lean, "{text:?}");
        }
    }

    #[test]
    fn text_without_comment_lines_is_not_copied() {
        assert!(matches!(
            blank_comment_lines("a = 1 # x\n"),
            Cow::Borrowed(_)
        ));
        assert!(matches!(blank_comment_lines("a = 1\n"), Cow::Borrowed(_)));
        assert_eq!(blank_comment_lines("# x\r\na = 1\n"), "\r\na = 1\n");
    }
}
