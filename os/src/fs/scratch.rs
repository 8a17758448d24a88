//! A test's scratch directory: a path under the system's temporary
//! directory, unique to the test and process, removed when the test ends —
//! passed or failed (a failed assertion unwinds through `Drop`).

use std::path::{Path, PathBuf};

pub(crate) struct Scratch(PathBuf);

impl Scratch {
    /// `otpgate-NAME-PID` under the temporary directory, left over
    /// contents of an earlier run removed; not created.
    pub(crate) fn new(name: &str) -> Self {
        let path = std::env::temp_dir().join(format!("otpgate-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        Self(path)
    }
}

impl std::ops::Deref for Scratch {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl AsRef<Path> for Scratch {
    fn as_ref(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
