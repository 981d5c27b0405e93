//! Test-owned Unix accounts that exist only in a private mount namespace:
//! copies of /etc/passwd and /etc/group with the accounts appended (and
//! any extra group lines), 0700 homes under the test's temp dir, and a
//! launcher that binds the copies over the host's files in a new mount
//! namespace before it runs a command. Must never change the host's
//! account databases.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use tempfile::TempDir;

use crate::util::{chown, temp_dir, Owner};

/// The accounts' world: the copied databases and the homes.
pub struct Accounts {
    pub dir: TempDir,
    passwd: PathBuf,
    group: PathBuf,
}

impl Accounts {
    /// `accounts`: (name, uid), each with a group of its own of the same
    /// number; `extra_groups`: whole /etc/group lines to append.
    pub fn new(prefix: &str, accounts: &[(&str, u32)], extra_groups: &[String]) -> Accounts {
        assert!(
            nix::unistd::geteuid().is_root(),
            "these tests bind account files in a mount namespace, as root"
        );
        let dir = temp_dir(prefix);
        let d = dir.path();
        let mut passwd = fs::read_to_string("/etc/passwd").expect("read /etc/passwd");
        let mut group = fs::read_to_string("/etc/group").expect("read /etc/group");
        fs::create_dir(d.join("home")).expect("mkdir home");
        fs::set_permissions(d.join("home"), fs::Permissions::from_mode(0o755)).expect("chmod");
        for &(name, uid) in accounts {
            let home = d.join("home").join(name);
            passwd.push_str(&format!(
                "{name}:x:{uid}:{uid}::{}:/bin/sh\n",
                home.display()
            ));
            group.push_str(&format!("{name}:x:{uid}:\n"));
            fs::create_dir(&home).expect("mkdir home");
            fs::set_permissions(&home, fs::Permissions::from_mode(0o700)).expect("chmod home");
            chown(&home, Owner { uid, gid: uid });
        }
        for line in extra_groups {
            group.push_str(line);
            group.push('\n');
        }
        let (p, g) = (d.join("passwd"), d.join("group"));
        fs::write(&p, passwd).expect("write passwd copy");
        fs::write(&g, group).expect("write group copy");
        Accounts {
            dir,
            passwd: p,
            group: g,
        }
    }

    pub fn home(&self, name: &str) -> PathBuf {
        self.dir.path().join("home").join(name)
    }

    /// Writes `text` to `rel` in `name`'s home, 0600, owned by `name` (the
    /// home's owner); returns its path.
    pub fn write_as(&self, name: &str, rel: &str, text: &str) -> PathBuf {
        use std::os::unix::fs::MetadataExt;
        let home = fs::metadata(self.home(name)).expect("stat home");
        let path = self.home(name).join(rel);
        fs::write(&path, text).expect("write user file");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).expect("chmod");
        let (uid, gid) = (home.uid(), home.gid());
        chown(&path, Owner { uid, gid });
        path
    }

    /// Runs its arguments in a new mount namespace with the copies bound
    /// over /etc/passwd and /etc/group.
    pub fn launcher(&self) -> Vec<String> {
        let script = format!(
            "mount --bind '{}' /etc/passwd && mount --bind '{}' /etc/group && exec \"$@\"",
            self.passwd.display(),
            self.group.display()
        );
        [
            "unshare",
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            &script,
            "sh",
        ]
        .map(String::from)
        .to_vec()
    }
}
