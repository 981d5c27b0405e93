//! Keeping a delivery inside the recipient's home (per-user rights mode):
//! the Maildir, a folder and its tmp/new/cur must be real directories, not
//! symlinks, and the Maildir must resolve to a place inside the home.
//! Checked before anything is written, on the thread already acting as the
//! user. Must not be the only defence: the user can swap a directory for a
//! link after the check (a TOCTOU window), and what remains is bounded by
//! the user's own rights (`crate::privilege`).

use std::io::ErrorKind;
use std::path::Path;

use super::outcome::Failure;

/// The Maildir root of `home`: no symlink, and inside the home once both
/// are resolved (when it exists).
pub(super) fn maildir(home: &Path, root: &Path) -> Result<(), Failure> {
    no_symlink(root)?;
    let resolved = match root.canonicalize() {
        Ok(p) => p,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(refuse(root, &e.to_string())),
    };
    let home = home
        .canonicalize()
        .map_err(|e| refuse(home, &format!("cannot resolve the home: {e}")))?;
    if !resolved.starts_with(&home) {
        return Err(refuse(root, "resolves outside the home"));
    }
    Ok(())
}

/// A folder directory (the Maildir root for INBOX) and its tmp/new/cur:
/// none of them a symlink.
pub(super) fn folder(root: &Path, dir: &Path) -> Result<(), Failure> {
    no_symlink(root)?;
    no_symlink(dir)?;
    for sub in ["tmp", "new", "cur"] {
        no_symlink(&dir.join(sub))?;
    }
    Ok(())
}

fn no_symlink(path: &Path) -> Result<(), Failure> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => Err(refuse(path, "is a symbolic link")),
        Ok(_) => Ok(()),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
        Err(e) => Err(refuse(path, &e.to_string())),
    }
}

fn refuse(path: &Path, why: &str) -> Failure {
    tracing::error!(path = %path.display(), "refusing to deliver: {why}");
    Failure::Io(format!("{}: {why}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symlinks_and_a_maildir_outside_the_home_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (home, outside) = (dir.path().join("home"), dir.path().join("outside"));
        std::fs::create_dir_all(home.join("real/new")).unwrap();
        std::fs::create_dir(&outside).unwrap();
        // Not there yet: fine (it will be created as the user).
        assert!(maildir(&home, &home.join("Maildir")).is_ok());
        std::os::unix::fs::symlink(&outside, home.join("Maildir")).unwrap();
        assert!(maildir(&home, &home.join("Maildir")).is_err());
        assert!(maildir(&home, &home.join("real")).is_ok());
        assert!(folder(&home.join("real"), &home.join("real")).is_ok());
        std::os::unix::fs::symlink(&outside, home.join("real/tmp")).unwrap();
        assert!(folder(&home.join("real"), &home.join("real")).is_err());
    }
}
