//! The ManageSieve backend of a running server: the session settings,
//! logins checked against the configured passwd-file (auth::passdb, read
//! afresh each time) or by Dovecot's auth service (auth::dovecot, with
//! `[users] driver = "dovecot"`; the name it returns is looked up in the
//! users directory), and each user's scripts in Pigeonhole's layout under
//! the home the users file gives (mailstow_maildir::sieve_scripts), judged
//! as `sieve check` judges a user's script. The configuration and the
//! users file are the deliverer's in force, so a reload reaches them. Must
//! not keep a password, nor open a store for anyone but the user who
//! logged in.

use std::net::SocketAddr;
use std::sync::Arc;

use mailstow_maildir::sieve_scripts::{
    InvalidScript, ScriptCheck, ScriptError, ScriptLimits, ScriptStore,
};
use mailstow_maildir::StoreError;
use mailstow_proto::managesieve::parse::Limits;
use mailstow_proto::managesieve::session::{self, Failure, Scripts};

use crate::config::{Config, SieveConfig};
use crate::deliver::Deliverer;
use crate::server::managesieve::{Backend, ConnConfig};
use crate::users::{Source, User};
use mailstow_sieve::compile::{self, CompileLimits};
use mailstow_sieve::{user_dir_path, user_script_path};

/// A user's scripts as `[sieve]` configures them: `user_dir` and `script`
/// expanded for the user (or the user's own, from Dovecot's userdb), owned by the user's uid/gid when running as
/// root, judged as `mailstow sieve check` judges a user's script.
/// `limits.max_script_size` is taken from `cfg`.
pub fn script_store(cfg: &SieveConfig, user: &User, limits: ScriptLimits) -> ScriptStore {
    ScriptStore::new(
        user_dir_path(&cfg.user_dir, &user.account()),
        user_script_path(&cfg.script, &user.account()),
        user.owner(),
        ScriptLimits {
            max_script_size: cfg.max_script_size as u64,
            ..limits
        },
        Arc::new(Compiles(CompileLimits {
            max_script_size: cfg.max_script_size,
            max_include_depth: cfg.max_include_depth,
            editheader: cfg.user_editheader,
        })),
    )
}

/// A script may be stored when it compiles as a user's script: an unknown
/// or disallowed `require` is refused with its line.
pub struct Compiles(pub CompileLimits);

impl ScriptCheck for Compiles {
    fn check(&self, script: &[u8]) -> Result<(), InvalidScript> {
        compile::compile(script, self.0)
            .map(|_| ())
            .map_err(|f| InvalidScript {
                line: f.line,
                column: f.column,
                message: f.message,
            })
    }
}

pub struct FileBackend {
    current: crate::server::Current,
}

impl FileBackend {
    pub fn new(current: crate::server::Current) -> FileBackend {
        FileBackend { current }
    }

    fn deliverer(&self) -> Result<Arc<Deliverer>, String> {
        (self.current)().ok_or_else(|| "the server is stopping".to_owned())
    }
}

impl Backend for FileBackend {
    fn conn_config(&self, peer: SocketAddr) -> Option<ConnConfig> {
        (self.current)().map(|d| conn_config(d.config(), peer))
    }

    fn authenticate(&self, login: &str, password: &[u8]) -> Result<Option<String>, String> {
        let cfg = self.deliverer()?.config_arc();
        match &cfg.users.source {
            Source::PasswdFile(passwd_file) => {
                crate::auth::passdb::authenticate(passwd_file, login, password)
                    .map(|found| found.map(|u| u.name))
                    .map_err(|e| e.to_string())
            }
            Source::Dovecot(d) => {
                crate::auth::dovecot::authenticate(&d.auth_socket, d.timeout, login, password)
                    .map_err(|e| e.to_string())
            }
            Source::System(_) => Err(format!(
                "users.driver = \"{}\": ManageSieve logins are not supported (no password source; use Dovecot's managesieved)",
                cfg.users.driver().name()
            )),
        }
    }

    fn scripts(&self, user: &str) -> Result<Box<dyn Scripts + Send>, String> {
        let d = self.deliverer()?;
        let cfg = d.config_arc();
        let (local, domain) = user.rsplit_once('@').unwrap_or((user, ""));
        let found = d
            .lookup(local, domain)
            .map_err(|e| e.detail())?
            .ok_or_else(|| format!("{user}: not (or no longer) in the users directory"))?;
        let limits = ScriptLimits {
            max_script_size: cfg.sieve.max_script_size as u64,
            max_scripts: cfg.managesieve.max_scripts,
            max_storage: cfg.managesieve.max_storage,
        };
        Ok(Box::new(UserScripts(script_store(
            &cfg.sieve, &found, limits,
        ))))
    }
}

/// The session settings `cfg` gives a client at `peer`.
pub fn conn_config(cfg: &Config, peer: SocketAddr) -> ConnConfig {
    ConnConfig {
        session: session::Config {
            implementation: format!("mailstow {}", env!("CARGO_PKG_VERSION")),
            extensions: mailstow_sieve::compile::user_extensions(cfg.sieve.user_editheader),
            max_redirects: cfg.sieve.max_redirects,
            notify: "mailto".into(),
            starttls: cfg.tls.is_some(),
            plaintext_without_tls: cfg.managesieve.plaintext_on_loopback && peer.ip().is_loopback(),
            max_auth_failures: cfg.managesieve.max_auth_failures,
            max_unauthenticated_commands: 20,
        },
        limits: Limits {
            max_line: 8 * 1024,
            // A script, plus what a SASL response or a name may take.
            max_literal: cfg.sieve.max_script_size as u64 + 1024,
        },
        idle_timeout: cfg.managesieve.idle_timeout,
        failure_delay: cfg.managesieve.auth_failure_delay,
        tls: cfg
            .tls
            .as_ref()
            .map(|t| tokio_rustls::TlsAcceptor::from(Arc::clone(&t.server))),
    }
}

/// The store as the session sees it.
struct UserScripts(ScriptStore);

fn failure(e: ScriptError) -> Failure {
    if matches!(
        e,
        ScriptError::Store(StoreError::Io { .. }) | ScriptError::Broken(_)
    ) {
        tracing::error!(error = %e, "managesieve: script storage failed");
    }
    Failure::new(e.code(), e.to_string())
}

impl Scripts for UserScripts {
    fn list(&mut self) -> Result<Vec<(String, bool)>, Failure> {
        self.0.list().map_err(failure)
    }

    fn get(&mut self, name: &str) -> Result<Vec<u8>, Failure> {
        match self.0.get(name) {
            Ok(Some(s)) => Ok(s),
            Ok(None) => Err(failure(ScriptError::NonExistent(name.to_owned()))),
            Err(e) => Err(failure(e)),
        }
    }

    fn put(&mut self, name: &str, script: &[u8]) -> Result<Vec<String>, Failure> {
        self.0
            .put(name, script)
            .map(|()| Vec::new())
            .map_err(failure)
    }

    fn check(&mut self, script: &[u8]) -> Result<Vec<String>, Failure> {
        self.0.check(script).map(|()| Vec::new()).map_err(failure)
    }

    fn set_active(&mut self, name: Option<&str>) -> Result<(), Failure> {
        self.0.set_active(name).map_err(failure)
    }

    fn delete(&mut self, name: &str) -> Result<(), Failure> {
        self.0.delete(name).map_err(failure)
    }

    fn rename(&mut self, from: &str, to: &str) -> Result<(), Failure> {
        self.0.rename(from, to).map_err(failure)
    }

    fn have_space(&mut self, name: &str, size: u64) -> Result<(), Failure> {
        self.0.have_space(name, size).map_err(failure)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use std::path::Path;

    fn user(home: &Path) -> User {
        User {
            name: "alice@example.org".into(),
            local: "alice".into(),
            domain: "example.org".into(),
            detail: None,
            uid: None,
            gid: None,
            maildir: home.join("Maildir"),
            home: home.to_owned(),
            extra: Vec::new(),
        }
    }

    #[test]
    fn with_system_accounts_logins_are_refused_saying_why() {
        let tmp = tempfile::tempdir().unwrap();
        let text = format!(
            "hostname = \"mx.example.org\"\n[storage]\nmail_root = \"{root}/mail\"\n[users]\ndriver = \"system\"\n",
            root = tmp.path().display()
        );
        let cfg = Arc::new(Config::from_toml(&text, Path::new("t.toml"), tmp.path()).unwrap());
        let d = Arc::new(Deliverer::new(cfg).unwrap());
        let backend = FileBackend::new(Box::new(move || Some(Arc::clone(&d))));
        let e = backend.authenticate("root", b"x").unwrap_err();
        assert!(e.contains("ManageSieve logins are not supported"), "{e}");
    }

    #[test]
    fn the_store_is_at_the_configured_paths_for_the_user_with_the_configured_size() {
        let tmp = tempfile::tempdir().unwrap();
        let text = format!(
            "hostname = \"mx.example.org\"\n[storage]\nmail_root = \"{root}/mail\"\n[users]\npasswd_file = \"{root}/users\"\n[sieve]\nmax_script_size = 4096\n",
            root = tmp.path().display()
        );
        let cfg = Config::from_toml(&text, Path::new("t.toml"), tmp.path()).unwrap();
        let home = tmp.path().join("home");
        let store = script_store(&cfg.sieve, &user(&home), ScriptLimits::default());
        assert_eq!(store.dir(), home.join("sieve"));
        assert_eq!(store.active_path(), home.join(".dovecot.sieve"));
        assert_eq!(store.limits().max_script_size, 4096);
    }

    #[test]
    fn a_script_is_stored_only_when_it_compiles_as_a_users_script() {
        let tmp = tempfile::tempdir().unwrap();
        let home = tmp.path().join("home");
        let check = Compiles(CompileLimits {
            max_script_size: 1 << 20,
            max_include_depth: 10,
            editheader: false,
        });
        let store = ScriptStore::new(
            home.join("sieve"),
            home.join(".dovecot.sieve"),
            None,
            ScriptLimits::default(),
            Arc::new(check),
        );
        let e = store
            .put("bad", b"# c\nrequire \"x-nonsense\";\nkeep;\n")
            .unwrap_err();
        match &e {
            ScriptError::Invalid(f) => assert_eq!(f.line, 2, "{f:?}"),
            other => panic!("{other:?}"),
        }
        assert!(e.to_string().starts_with("line 2"), "{e}");
        let e = store.put("bad", b"keep;\nfrobnicate;\n").unwrap_err();
        assert!(matches!(e, ScriptError::Invalid(_)), "{e:?}");
        let e = store
            .check(b"require \"editheader\"; addheader \"X\" \"y\";")
            .unwrap_err();
        assert!(e.to_string().contains("not allowed"), "{e}");
        store
            .put("away", b"require \"vacation\"; vacation \"away\";")
            .unwrap();
        assert_eq!(store.list().unwrap(), vec![("away".to_owned(), false)]);
    }
}
