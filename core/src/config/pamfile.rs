//! Reading PAM service files the way libpam does, so `otpgate check-config
//! --service` shows the arguments the module will really get and the stack
//! it really sits in.
//!
//! libpam's rules (Linux-PAM `pam_handlers.c`, `pam_misc.c`):
//! * everything from the first `#` on a line is a comment; a line ending in
//!   `\` continues on the next;
//! * words are separated by spaces, tabs and newlines, except that a word
//!   starting with `[` runs to the first `]` not preceded by `\` (`\]`
//!   becomes `]`), loses its brackets, and the next word starts right after
//!   that `]` — so `[prompt=a]b]` is the two arguments `prompt=a` and `b]`;
//! * a line is `TYPE CONTROL MODULE ARGS…`; a `-` before the type only hides
//!   load errors; `include FILE` and `substack FILE` take FILE's lines of the
//!   same type, `@include FILE` takes all of FILE's lines; relative names are
//!   looked up in the service directory; nesting stops at 16 levels.

use std::path::{Path, PathBuf};

/// libpam's limit on nested includes (`PAM_SUBSTACK_MAX_LEVEL`).
pub const MAX_INCLUDE_DEPTH: usize = 16;
/// A PAM file larger than this is not read.
pub const MAX_PAM_FILE: u64 = 1024 * 1024;

/// One module line of a stack, after includes were followed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The file and line it came from.
    pub file: PathBuf,
    pub line: usize,
    /// `auth`, `account`, `session` or `password` (lower case).
    pub kind: String,
    /// The control word or bracket expression (without brackets).
    pub control: String,
    /// The module path as written.
    pub module: String,
    /// The arguments exactly as the module receives them.
    pub args: Vec<String>,
}

impl Entry {
    /// The module's file name (`pam_unix.so` for `/lib/…/pam_unix.so`).
    pub fn module_name(&self) -> &str {
        self.module.rsplit('/').next().unwrap_or(&self.module)
    }

    /// Whether this line loads pam_otpgate.
    pub fn is_otpgate(&self) -> bool {
        self.module_name() == "pam_otpgate.so" || self.module_name() == "libpam_otpgate.so"
    }

    /// The line as libpam understood it, for display.
    pub fn show(&self) -> String {
        let mut out = format!("{} ", self.kind);
        if self.control.contains(char::is_whitespace) || self.control.contains('=') {
            out.push_str(&format!("[{}]", self.control));
        } else {
            out.push_str(&self.control);
        }
        out.push(' ');
        out.push_str(&self.module);
        for a in &self.args {
            out.push(' ');
            if a.contains(char::is_whitespace) || a.is_empty() {
                out.push_str(&format!("[{}]", a.replace(']', "\\]")));
            } else {
                out.push_str(a);
            }
        }
        out
    }
}

/// Joins continuation lines and strips comments: (first line number, text).
pub fn logical_lines(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut pending: Option<(usize, String)> = None;
    for (i, raw) in text.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or("");
        let trimmed = line.trim_end_matches([' ', '\t', '\r']);
        let (start, mut acc) = pending.take().unwrap_or((i + 1, String::new()));
        if let Some(body) = trimmed.strip_suffix('\\') {
            acc.push_str(body);
            acc.push(' ');
            pending = Some((start, acc));
            continue;
        }
        acc.push_str(trimmed);
        if !acc.trim().is_empty() {
            out.push((start, acc));
        }
    }
    if let Some((start, acc)) = pending
        && !acc.trim().is_empty()
    {
        out.push((start, acc));
    }
    out
}

/// Splits a line into words exactly as libpam's `_pam_StrTok` does.
pub fn words(line: &str) -> Vec<String> {
    let chars: Vec<char> = line.chars().collect();
    let sep = |c: char| c == ' ' || c == '\t' || c == '\n';
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        while i < chars.len() && sep(chars[i]) {
            i += 1;
        }
        if i >= chars.len() {
            break;
        }
        let mut word = String::new();
        if chars[i] == '[' {
            i += 1;
            while i < chars.len() && chars[i] != ']' {
                if chars[i] == '\\' && chars.get(i + 1) == Some(&']') {
                    i += 1;
                }
                word.push(chars[i]);
                i += 1;
            }
            // Skip the closing bracket; the next word starts right after it.
            i += 1;
        } else {
            while i < chars.len() && !sep(chars[i]) {
                word.push(chars[i]);
                i += 1;
            }
        }
        out.push(word);
    }
    out
}

message_error! {
    /// Why a stack could not be read.
    PamFileError
}

/// How a PAM file's text is read: the host's files (otpgate-os), or a
/// table in tests. `Err` says why, for the message.
pub type Read<'r> = &'r dyn Fn(&Path) -> Result<String, String>;

/// Reads the lines of type `kind` of service `service` in `dir`, following
/// includes and substacks, each file through `read`.
pub fn stack(
    dir: &Path,
    service: &str,
    kind: &str,
    read: Read,
) -> Result<Vec<Entry>, PamFileError> {
    let mut out = Vec::new();
    load(dir, service, Some(kind), 0, read, &mut out)?;
    Ok(out)
}

fn resolve(dir: &Path, name: &str) -> PathBuf {
    if name.starts_with('/') {
        PathBuf::from(name)
    } else {
        dir.join(name)
    }
}

fn load(
    dir: &Path,
    name: &str,
    kind: Option<&str>,
    depth: usize,
    read: Read,
    out: &mut Vec<Entry>,
) -> Result<(), PamFileError> {
    if depth >= MAX_INCLUDE_DEPTH {
        return Err(PamFileError(format!(
            "includes nested deeper than {MAX_INCLUDE_DEPTH} levels at {name}; libpam refuses this stack"
        )));
    }
    let path = resolve(dir, name);
    let text =
        read(&path).map_err(|e| PamFileError(format!("cannot read {}: {e}", path.display())))?;
    for (line, text) in logical_lines(&text) {
        let w = words(&text);
        let Some(first) = w.first() else { continue };
        if first == "@include" {
            if let Some(file) = w.get(1) {
                load(dir, file, kind, depth + 1, read, out)?;
            }
            continue;
        }
        let line_kind = first.trim_start_matches('-').to_ascii_lowercase();
        if kind.is_some_and(|k| k != line_kind) {
            continue;
        }
        let control = w.get(1).cloned().unwrap_or_default();
        let module = w.get(2).cloned().unwrap_or_default();
        let lc = control.to_ascii_lowercase();
        if lc == "include" || lc == "substack" {
            load(dir, &module, Some(&line_kind), depth + 1, read, out)?;
            continue;
        }
        out.push(Entry {
            file: path.clone(),
            line,
            kind: line_kind,
            control,
            module,
            args: w.iter().skip(3).cloned().collect(),
        });
    }
    Ok(())
}

/// Whether a stack lets a login through when otpgate passes a user by
/// policy (PAM_IGNORE): libpam denies a stack in which no module succeeded,
/// so some other module than otpgate and pam_deny must be able to succeed.
pub fn passes_without_otpgate(stack: &[Entry]) -> bool {
    stack
        .iter()
        .any(|e| !e.is_otpgate() && e.module_name() != "pam_deny.so")
}

/// What is wrong with a split-mode stack (`forward_pass` … password module
/// … `forwarded_code`), each as a warning saying what to change. Empty for a
/// stack without split mode or a right one.
pub fn split_mode_problems(stack: &[Entry]) -> Vec<String> {
    let has = |e: &Entry, arg: &str| e.is_otpgate() && e.args.iter().any(|a| a == arg);
    let first = stack.iter().position(|e| has(e, "forward_pass"));
    let second = stack.iter().position(|e| has(e, "forwarded_code"));
    let mut problems = Vec::new();
    match (first, second) {
        (None, None) => {}
        (Some(_), None) => problems.push(
            "a `pam_otpgate.so forward_pass` line takes the code off the password, but no `pam_otpgate.so forwarded_code` line after the password module checks it: add one"
                .to_string(),
        ),
        (None, Some(_)) => problems.push(
            "a `pam_otpgate.so forwarded_code` line has no `forward_pass` line before it, so it denies every login: put `auth requisite pam_otpgate.so forward_pass` before the password module"
                .to_string(),
        ),
        (Some(f), Some(s)) if s < f => problems.push(
            "the `forwarded_code` line comes before the `forward_pass` line: swap them".to_string(),
        ),
        (Some(f), Some(s)) => {
            let between = &stack[f + 1..s];
            if between.is_empty() {
                problems.push(
                    "no password module between `forward_pass` and `forwarded_code`: put yours (for example `auth requisite pam_unix.so use_first_pass`) between them"
                        .to_string(),
                );
            }
            for e in between {
                if e.control != "requisite" {
                    problems.push(format!(
                        "{}:{}: `{}` is `{}`; make it `requisite`, so that a wrong password ends the stack before the code is checked (and counted)",
                        e.file.display(),
                        e.line,
                        e.module_name(),
                        e.control
                    ));
                }
                if !e.args.iter().any(|a| {
                    a == "use_first_pass" || a == "try_first_pass" || a == "use_authtok"
                }) {
                    problems.push(format!(
                        "{}:{}: `{}` has no `use_first_pass`: it would ask for the password again instead of using the one otpgate handed on",
                        e.file.display(),
                        e.line,
                        e.module_name()
                    ));
                }
            }
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(text: &str) -> Vec<Entry> {
        logical_lines(text)
            .into_iter()
            .map(|(line, l)| {
                let w = words(&l);
                Entry {
                    file: "t".into(),
                    line,
                    kind: w[0].clone(),
                    control: w[1].clone(),
                    module: w[2].clone(),
                    args: w[3..].to_vec(),
                }
            })
            .collect()
    }

    #[test]
    fn split_mode_stacks_are_checked() {
        let good = "auth requisite pam_otpgate.so forward_pass
                    auth requisite pam_unix.so use_first_pass
                    auth required pam_otpgate.so forwarded_code
";
        assert_eq!(split_mode_problems(&entries(good)), Vec::<String>::new());
        assert!(
            split_mode_problems(&entries(
                "auth required pam_otpgate.so
"
            ))
            .is_empty()
        );
        let cases = [
            (
                "auth requisite pam_otpgate.so forward_pass
auth requisite pam_unix.so use_first_pass
",
                "no `pam_otpgate.so forwarded_code` line",
            ),
            (
                "auth requisite pam_unix.so
auth required pam_otpgate.so forwarded_code
",
                "denies every login",
            ),
            (
                "auth requisite pam_otpgate.so forward_pass
auth required pam_unix.so use_first_pass
                 auth required pam_otpgate.so forwarded_code
",
                "make it `requisite`",
            ),
            (
                "auth requisite pam_otpgate.so forward_pass
auth requisite pam_unix.so
                 auth required pam_otpgate.so forwarded_code
",
                "no `use_first_pass`",
            ),
            (
                "auth requisite pam_otpgate.so forward_pass
auth required pam_otpgate.so forwarded_code
",
                "no password module",
            ),
        ];
        for (text, want) in cases {
            let got = split_mode_problems(&entries(text));
            assert!(got.iter().any(|p| p.contains(want)), "{text}: {got:?}");
        }
    }

    #[test]
    fn words_follow_libpam_brackets_and_escapes() {
        assert_eq!(
            words("auth [success=1 default=ignore] pam_unix.so nullok"),
            ["auth", "success=1 default=ignore", "pam_unix.so", "nullok"]
        );
        assert_eq!(words("[prompt=a]b]"), ["prompt=a", "b]"]);
        assert_eq!(words("[prompt=a\\]b]"), ["prompt=a]b"]);
        assert_eq!(
            words("[prompt=Sudo code: ] debug"),
            ["prompt=Sudo code: ", "debug"]
        );
        assert_eq!(words("x[y] z"), ["x[y]", "z"]);
        assert_eq!(words("[unterminated"), ["unterminated"]);
        assert_eq!(words("  \t "), Vec::<String>::new());
    }

    #[test]
    fn comments_and_continuations() {
        let lines =
            logical_lines("# c\nauth required \\\n  pam_x.so a # b\n\n@include common-auth\n");
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0].0, 2);
        assert_eq!(words(&lines[0].1), ["auth", "required", "pam_x.so", "a"]);
    }

    #[test]
    fn includes_and_substacks_are_followed() {
        let files = [
            (
                "/pam.d/common-auth",
                "auth [success=1 default=ignore] pam_unix.so nullok\nauth requisite pam_deny.so\n\
                 auth required pam_permit.so\nauth required pam_otpgate.so window=0\n\
                 session required pam_unix.so\n",
            ),
            ("/pam.d/keyonly", "auth required pam_otpgate.so\n"),
            (
                "/pam.d/sshd",
                "@include common-auth\naccount include keyonly\nauth substack keyonly\n",
            ),
            ("/pam.d/loop", "auth include loop\n"),
        ];
        let read = |path: &Path| {
            files
                .iter()
                .find(|(p, _)| Path::new(p) == path)
                .map(|(_, text)| text.to_string())
                .ok_or_else(|| "No such file or directory".to_string())
        };
        let dir = Path::new("/pam.d");
        let s = stack(dir, "sshd", "auth", &read).unwrap();
        let modules: Vec<&str> = s.iter().map(Entry::module_name).collect();
        assert_eq!(
            modules,
            [
                "pam_unix.so",
                "pam_deny.so",
                "pam_permit.so",
                "pam_otpgate.so",
                "pam_otpgate.so"
            ]
        );
        assert_eq!(s[3].args, ["window=0"]);
        assert!(passes_without_otpgate(&s));
        let alone = stack(dir, "keyonly", "auth", &read).unwrap();
        assert!(!passes_without_otpgate(&alone));
        let nested = stack(dir, "loop", "auth", &read).unwrap_err().0;
        assert!(nested.contains("nested"), "{nested}");
        let missing = stack(dir, "nope", "auth", &read).unwrap_err().0;
        assert_eq!(
            missing,
            "cannot read /pam.d/nope: No such file or directory"
        );
    }
}
