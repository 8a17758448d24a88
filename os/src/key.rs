//! Root-only files: `secret_key_file`, `database_password_file`.

use otpgate_core::fleet::seal::{Key, KeyError};
use std::io::Read as _;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;
use zeroize::Zeroizing;

/// Reads a small root-only file: no link, owned by root, no access for
/// group or others. `what` names the config key in errors.
pub fn read_root_only(path: &Path, what: &str, max: u64) -> Result<Zeroizing<Vec<u8>>, KeyError> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags((nix::fcntl::OFlag::O_NOFOLLOW | nix::fcntl::OFlag::O_CLOEXEC).bits())
        .open(path)
        .map_err(|e| KeyError(format!("{what} {}: {e}", path.display())))?;
    let meta = file
        .metadata()
        .map_err(|e| KeyError(format!("{what} {}: {e}", path.display())))?;
    if !meta.is_file() {
        return Err(KeyError(format!(
            "{what} {}: is not a regular file",
            path.display()
        )));
    }
    if meta.uid() != 0 || meta.mode() & 0o077 != 0 {
        return Err(KeyError(format!(
            "{what} {}: must be owned by root and readable by root alone; run `chown root:root {p} && chmod 600 {p}`",
            path.display(),
            p = path.display()
        )));
    }
    if meta.len() > max {
        return Err(KeyError(format!(
            "{what} {}: is larger than {max} bytes",
            path.display()
        )));
    }
    let mut bytes = Zeroizing::new(Vec::new());
    file.take(max)
        .read_to_end(&mut bytes)
        .map_err(|e| KeyError(format!("{what} {}: {e}", path.display())))?;
    Ok(bytes)
}

/// Loads `secret_key_file`: 32 bytes, base64 on one line.
pub fn load_key(path: &Path) -> Result<Key, KeyError> {
    let bytes = read_root_only(path, "secret_key_file", 1024)?;
    let text = std::str::from_utf8(&bytes)
        .map_err(|_| KeyError(format!("secret_key_file {}: is not text", path.display())))?;
    Key::from_base64(text.trim())
        .map_err(|why| KeyError(format!("secret_key_file {}: {why}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;

    #[test]
    fn the_key_file_must_be_root_only() {
        let dir = crate::fs::Scratch::new("seal");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("key");
        std::fs::write(
            &path,
            base64::engine::general_purpose::STANDARD.encode([7u8; 32]),
        )
        .unwrap();
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o644))
            .unwrap();
        let e = load_key(&path).unwrap_err();
        assert!(e.0.contains("chmod 600"), "{e}");
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .unwrap();
        assert!(
            load_key(&path).is_ok(),
            "root-owned 0600 (the tests run as root)"
        );
        let link = dir.join("link");
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(&path, &link).unwrap();
        assert!(load_key(&link).is_err(), "a link is never followed");
    }
}
