//! What this otpgated has seen of the fleet store: for each account the
//! highest enrollment counter and login-state version
//! ([`otpgate_core::fleet::freshness::Seen`]), kept in its own root-only
//! directory (`daemon_state_dir`, mode 0700) and in memory. Raised as rows
//! are read and written, never lowered but by `otpgate accept-restore`.
//!
//! On disk it is one journal, `seen.log`: a line `ACCOUNT ENROLLMENT STATE`
//! per change (the account as in state file names), the last line of an
//! account winning. One writer thread appends what the requests of a
//! moment raised in one write and one `fdatasync` (a group commit), and
//! only then makes it visible and answers them: a raise is durable before
//! the request that made it answers, and what a request reads is always
//! on disk. (One file per account, created and renamed for each change,
//! cost more than the rest of a login and serialised every login of a
//! daemon behind two fsyncs.) The journal is rewritten whole — temporary
//! file, fsync, rename, fsync of the directory — at start, when it has
//! grown to several times the accounts it holds, and by accept-restore.
//!
//! A crash can cut only the journal's last line (a change never
//! acknowledged); it is dropped at start. Any other damage stops the
//! daemon with the file named.

use otpgate_core::fleet::freshness::Seen;
use otpgate_core::sys::paths::state_stem;
use std::collections::HashMap;
use std::io::{Read as _, Write as _};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, mpsc};
use tokio::sync::oneshot;

const JOURNAL: &str = "seen.log";
/// The per-account files of otpgate 0.6.0, taken over at start.
const OLD_SUFFIX: &str = ".seen";
/// The journal is rewritten when it holds more lines than this many per
/// account (and at least [`MIN_COMPACT`]).
const LINES_PER_ACCOUNT: usize = 4;
const MIN_COMPACT: usize = 4096;

type Map = HashMap<String, Seen>;
type Reply = oneshot::Sender<Result<(), String>>;

enum Job {
    /// Raise (`exact: false`) or set an account's entry.
    Change {
        stem: String,
        seen: Seen,
        exact: bool,
        reply: Reply,
    },
    /// Replace every entry (accept-restore for all accounts).
    Replace { all: Map, reply: Reply },
}

pub struct Memory {
    /// What is on disk: changed only by the writer, after its fsync.
    map: Arc<Mutex<Map>>,
    /// `None` only while being dropped.
    jobs: Mutex<Option<mpsc::Sender<Job>>>,
    writer: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Memory {
    /// Stops the writer (it holds the directory's lock) before returning,
    /// so the directory is free once the `Memory` is gone.
    fn drop(&mut self) {
        self.jobs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

fn lock(map: &Mutex<Map>) -> std::sync::MutexGuard<'_, Map> {
    map.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Memory {
    /// Opens (creating, mode 0700) the directory — it must be root's, not
    /// a link, and closed to group and others — reads the journal, and
    /// starts the writer.
    pub fn open(dir: &Path) -> Result<Self, String> {
        let shown = dir.display();
        if std::fs::symlink_metadata(dir).is_err() {
            std::fs::create_dir_all(dir)
                .map_err(|e| format!("daemon_state_dir {shown}: cannot be created: {e}"))?;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
                .map_err(|e| format!("daemon_state_dir {shown}: {e}"))?;
        }
        let meta =
            std::fs::symlink_metadata(dir).map_err(|e| format!("daemon_state_dir {shown}: {e}"))?;
        if !meta.is_dir() || meta.uid() != 0 || meta.mode() & 0o077 != 0 {
            return Err(format!(
                "daemon_state_dir {shown}: must be a directory (not a link) owned by root with mode 0700; \
                 run `chown root:root {shown} && chmod 700 {shown}`"
            ));
        }
        let lock = open_nofollow(
            std::fs::OpenOptions::new().create(true).append(true),
            &dir.join(".lock"),
        )
        .map_err(|e| format!("daemon_state_dir {shown}/.lock: {e}"))?;
        lock.try_lock().map_err(|_| {
            format!(
                "daemon_state_dir {shown} is in use by another otpgated; give each daemon its own directory"
            )
        })?;
        let mut map = read_journal(&dir.join(JOURNAL))?;
        let old = read_old_files(dir, &mut map)?;
        let journal = Journal::rewrite(dir, &map)?;
        for path in old {
            std::fs::remove_file(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        }
        let map = Arc::new(Mutex::new(map));
        let (tx, rx) = mpsc::channel();
        let writer = Writer {
            map: Arc::clone(&map),
            journal,
            _lock: lock,
        };
        let writer = std::thread::Builder::new()
            .name("seen-writer".into())
            .spawn(move || writer.run(&rx))
            .map_err(|e| format!("daemon_state_dir {shown}: cannot start its writer: {e}"))?;
        Ok(Self {
            map,
            jobs: Mutex::new(Some(tx)),
            writer: Some(writer),
        })
    }

    /// What this daemon has seen of `user`'s rows.
    pub fn seen(&self, user: &str) -> Seen {
        lock(&self.map)
            .get(&state_stem(user))
            .copied()
            .unwrap_or_default()
    }

    /// Raises what was seen of `user` to `seen` (never lowers it); returns
    /// once that is on disk.
    pub async fn raise(&self, user: &str, seen: Seen) -> Result<(), String> {
        let old = self.seen(user);
        if old.raised(seen) == old {
            return Ok(());
        }
        self.change(user, seen, false).await
    }

    /// Sets what was seen of `user` to exactly `seen`, lower or not
    /// (`otpgate accept-restore --user`).
    pub async fn set(&self, user: &str, seen: Seen) -> Result<(), String> {
        self.change(user, seen, true).await
    }

    async fn change(&self, user: &str, seen: Seen, exact: bool) -> Result<(), String> {
        self.submit(|reply| Job::Change {
            stem: state_stem(user),
            seen,
            exact,
            reply,
        })
        .await
    }

    /// Replaces everything seen by `all` (`otpgate accept-restore`).
    pub async fn replace_all(&self, all: &[(String, Seen)]) -> Result<(), String> {
        let all = all
            .iter()
            .map(|(user, seen)| (state_stem(user), *seen))
            .collect();
        self.submit(|reply| Job::Replace { all, reply }).await
    }

    async fn submit(&self, job: impl FnOnce(Reply) -> Job) -> Result<(), String> {
        let (reply, answer) = oneshot::channel();
        let sent = self
            .jobs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .as_ref()
            .map(|jobs| jobs.send(job(reply)));
        if !matches!(sent, Some(Ok(()))) {
            return Err("its writer has stopped; restart otpgated".into());
        }
        answer
            .await
            .unwrap_or_else(|_| Err("its writer has stopped; restart otpgated".into()))
    }
}

fn open_nofollow(
    options: &mut std::fs::OpenOptions,
    path: &Path,
) -> std::io::Result<std::fs::File> {
    options
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
}

/// The journal's entries; a last line cut by a crash is dropped.
fn read_journal(path: &Path) -> Result<Map, String> {
    let mut text = String::new();
    match open_nofollow(std::fs::OpenOptions::new().read(true), path) {
        Ok(mut f) => {
            f.read_to_string(&mut text)
                .map_err(|e| format!("{}: {e}", path.display()))?;
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Map::new()),
        Err(e) => return Err(format!("{}: {e}", path.display())),
    }
    let mut map = Map::new();
    let complete = text.rfind('\n').map_or(0, |i| i + 1);
    for (n, line) in text[..complete].lines().enumerate() {
        let (stem, seen) = parse_line(line).ok_or_else(|| {
            format!(
                "{} is damaged at line {}; move it away and run `otpgate accept-restore` \
                 to take what the store holds now",
                path.display(),
                n + 1
            )
        })?;
        map.insert(stem, seen);
    }
    Ok(map)
}

fn parse_line(line: &str) -> Option<(String, Seen)> {
    let mut fields = line.split(' ');
    let stem = fields.next().filter(|s| !s.is_empty())?;
    let enrollment = fields.next()?.parse().ok()?;
    let state = fields.next()?.parse().ok()?;
    if fields.next().is_some() {
        return None;
    }
    Some((stem.to_string(), Seen { enrollment, state }))
}

fn line(stem: &str, seen: Seen) -> String {
    format!("{stem} {} {}\n", seen.enrollment, seen.state)
}

/// Takes the per-account files of otpgate 0.6.0 into `map`; their paths,
/// to be removed once the journal holds them.
fn read_old_files(dir: &Path, map: &mut Map) -> Result<Vec<PathBuf>, String> {
    let list = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut found = Vec::new();
    for entry in list {
        let entry = entry.map_err(|e| format!("{}: {e}", dir.display()))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(stem) = name.strip_suffix(OLD_SUFFIX) else {
            continue;
        };
        let path = entry.path();
        let mut text = String::new();
        open_nofollow(std::fs::OpenOptions::new().read(true), &path)
            .and_then(|mut f| f.read_to_string(&mut text))
            .map_err(|e| format!("{}: {e}", path.display()))?;
        let seen: Seen = toml::from_str(&text).map_err(|e| {
            format!(
                "{} is corrupt ({}); remove it and run `otpgate accept-restore`",
                path.display(),
                e.message().trim()
            )
        })?;
        let entry = map.entry(stem.to_string()).or_default();
        *entry = entry.raised(seen);
        found.push(path);
    }
    Ok(found)
}

/// The open journal and how many lines it holds.
struct Journal {
    dir: PathBuf,
    file: std::fs::File,
    lines: usize,
    len: u64,
}

impl Journal {
    /// Writes `map` as a new journal atomically and opens it for appending.
    fn rewrite(dir: &Path, map: &Map) -> Result<Self, String> {
        let path = dir.join(JOURNAL);
        let fail = |e: &dyn std::fmt::Display| format!("{}: {e}", path.display());
        let tmp = dir.join(format!(".{JOURNAL}.tmp"));
        let _ = std::fs::remove_file(&tmp);
        let mut f = open_nofollow(
            std::fs::OpenOptions::new().write(true).create_new(true),
            &tmp,
        )
        .map_err(|e| fail(&e))?;
        let text: String = map.iter().map(|(stem, seen)| line(stem, *seen)).collect();
        f.write_all(text.as_bytes()).map_err(|e| fail(&e))?;
        f.sync_all().map_err(|e| fail(&e))?;
        std::fs::rename(&tmp, &path).map_err(|e| fail(&e))?;
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| fail(&e))?;
        let file =
            open_nofollow(std::fs::OpenOptions::new().append(true), &path).map_err(|e| fail(&e))?;
        Ok(Self {
            dir: dir.to_path_buf(),
            file,
            lines: map.len(),
            len: text.len() as u64,
        })
    }

    /// Appends `text` (whole lines) and waits until it is on disk; a
    /// failed write is cut off again so the next starts on a line.
    fn append(&mut self, text: &str, lines: usize) -> Result<(), String> {
        let done = self
            .file
            .write_all(text.as_bytes())
            .and_then(|()| self.file.sync_data());
        match done {
            Ok(()) => {
                self.len += text.len() as u64;
                self.lines += lines;
                Ok(())
            }
            Err(e) => {
                let _ = self.file.set_len(self.len);
                Err(format!("{}: {e}", self.dir.join(JOURNAL).display()))
            }
        }
    }
}

struct Writer {
    map: Arc<Mutex<Map>>,
    journal: Journal,
    /// Held for the daemon's life: one otpgated per directory (two would
    /// write the same journal, each trusting its own copy).
    _lock: std::fs::File,
}

impl Writer {
    fn run(mut self, jobs: &mpsc::Receiver<Job>) {
        while let Ok(first) = jobs.recv() {
            let mut batch = vec![first];
            batch.extend(jobs.try_iter());
            let mut changes = Vec::new();
            for job in batch {
                match job {
                    Job::Change {
                        stem,
                        seen,
                        exact,
                        reply,
                    } => changes.push((stem, seen, exact, reply)),
                    Job::Replace { all, reply } => {
                        self.commit(std::mem::take(&mut changes));
                        let _ = reply.send(self.replace(all));
                    }
                }
            }
            self.commit(changes);
        }
    }

    /// Writes a batch of changes with one fsync, then publishes them and
    /// answers their requests.
    fn commit(&mut self, changes: Vec<(String, Seen, bool, Reply)>) {
        if changes.is_empty() {
            return;
        }
        let mut next: Map = Map::new();
        let mut text = String::new();
        {
            let map = lock(&self.map);
            for (stem, seen, exact, _) in &changes {
                let old = next
                    .get(stem)
                    .or_else(|| map.get(stem))
                    .copied()
                    .unwrap_or_default();
                let new = if *exact { *seen } else { old.raised(*seen) };
                text.push_str(&line(stem, new));
                next.insert(stem.clone(), new);
            }
        }
        let result = self.journal.append(&text, changes.len());
        if result.is_ok() {
            lock(&self.map).extend(next);
        }
        for (_, _, _, reply) in changes {
            let _ = reply.send(result.clone());
        }
        let accounts = lock(&self.map).len();
        if self.journal.lines > MIN_COMPACT.max(accounts * LINES_PER_ACCOUNT) {
            let map = lock(&self.map).clone();
            // On failure the journal stays as it is and grows; the next
            // batch tries again.
            if let Ok(journal) = Journal::rewrite(&self.journal.dir, &map) {
                self.journal = journal;
            }
        }
    }

    fn replace(&mut self, all: Map) -> Result<(), String> {
        self.journal = Journal::rewrite(&self.journal.dir, &all)?;
        *lock(&self.map) = all;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("otpgated-memory-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    /// A fresh directory as the daemon makes it, with `file` written in it.
    fn dir_with(name: &str, file: &str, text: &str) -> PathBuf {
        let d = dir(name);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o700)).unwrap();
        std::fs::write(d.join(file), text).unwrap();
        d
    }

    fn seen(enrollment: u64, state: u64) -> Seen {
        Seen { enrollment, state }
    }

    fn block<T>(f: impl Future<Output = T>) -> T {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    #[test]
    fn remembers_across_restarts_and_never_lowers() {
        let d = dir("raise");
        let m = Memory::open(&d).unwrap();
        assert_eq!(m.seen("alice"), Seen::default());
        block(m.raise("alice", seen(5, 2))).unwrap();
        block(m.raise("alice", seen(3, 9))).unwrap();
        assert_eq!(m.seen("alice"), seen(5, 9));
        assert!(
            Memory::open(&d)
                .err()
                .unwrap()
                .contains("in use by another otpgated"),
            "one daemon per directory"
        );
        drop(m);
        let again = Memory::open(&d).unwrap();
        assert_eq!(again.seen("alice"), seen(5, 9));
        block(again.set("alice", Seen::default())).unwrap();
        assert_eq!(again.seen("alice"), Seen::default());
        block(again.raise("bob", seen(1, 0))).unwrap();
        block(again.replace_all(&[("carol".into(), seen(7, 7))])).unwrap();
        assert_eq!(again.seen("bob"), Seen::default());
        assert_eq!(again.seen("carol"), seen(7, 7));
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn parallel_raises_all_reach_the_disk() {
        let d = dir("parallel");
        let m = Arc::new(Memory::open(&d).unwrap());
        // Tasks interleave at their awaits, as a daemon's requests do.
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(async {
            // Falling values: in one batch, a later raise must not lower
            // what an earlier one of the same account wrote.
            let tasks: Vec<_> = (1..=200u64)
                .rev()
                .map(|i| {
                    let m = Arc::clone(&m);
                    tokio::spawn(async move {
                        m.raise(&format!("u{}", i % 10), seen(i, i)).await.unwrap();
                    })
                })
                .collect();
            for t in tasks {
                t.await.unwrap();
            }
        });
        let on_disk = read_journal(&d.join(JOURNAL)).unwrap();
        for k in 0..10u64 {
            let top = (1..=200).filter(|i| i % 10 == k).max().unwrap();
            assert_eq!(m.seen(&format!("u{k}")), seen(top, top));
            assert_eq!(on_disk[&format!("u{k}")], seen(top, top));
        }
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_cut_last_line_is_dropped_and_other_damage_named() {
        let d = dir_with("cut", JOURNAL, "alice 4 4\nbob 2 2\nalice 9 9\nbob 7");
        let m = Memory::open(&d).unwrap();
        assert_eq!(m.seen("alice"), seen(9, 9));
        assert_eq!(
            m.seen("bob"),
            seen(2, 2),
            "the cut line was never acknowledged"
        );
        drop(m);
        std::fs::write(d.join(JOURNAL), "alice 4 4\nal ice 9\nbob 2 2\n").unwrap();
        let e = Memory::open(&d).err().unwrap();
        assert!(
            e.contains("damaged at line 2") && e.contains("accept-restore"),
            "{e}"
        );
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn the_files_of_0_6_0_are_taken_over() {
        let d = dir_with("old", "alice.seen", "enrollment = 5\nstate = 3\n");
        let m = Memory::open(&d).unwrap();
        assert_eq!(m.seen("alice"), seen(5, 3));
        assert!(!d.join("alice.seen").exists());
        assert_eq!(read_journal(&d.join(JOURNAL)).unwrap()["alice"], seen(5, 3));
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn an_open_directory_is_refused() {
        let d = dir("open");
        std::fs::create_dir_all(&d).unwrap();
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755)).unwrap();
        let e = Memory::open(&d).err().unwrap();
        assert!(e.contains("chmod 700"), "{e}");
        std::fs::remove_dir_all(&d).unwrap();
    }
}
