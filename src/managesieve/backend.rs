//! The ManageSieve backend of a running server: logins checked against the
//! configured passwd-file (auth::passdb, read afresh each time), and each
//! user's scripts in Pigeonhole's layout under the home the users file
//! gives (store::ScriptStore). The configuration and the users file are
//! the deliverer's in force, so a reload reaches them. Must not keep a
//! password, nor open a store for anyone but the user who logged in.

use std::sync::Arc;

use super::conn::Backend;
use super::session::{Failure, Scripts};
use super::store::{ScriptError, ScriptLimits, ScriptStore};
use crate::deliver::Deliverer;

/// The deliverer in force, or None once the server is stopping.
pub type Current = Box<dyn Fn() -> Option<Arc<Deliverer>> + Send + Sync>;

pub struct FileBackend {
    current: Current,
}

impl FileBackend {
    pub fn new(current: Current) -> FileBackend {
        FileBackend { current }
    }

    fn deliverer(&self) -> Result<Arc<Deliverer>, String> {
        (self.current)().ok_or_else(|| "the server is stopping".to_owned())
    }
}

impl Backend for FileBackend {
    fn authenticate(&self, login: &str, password: &[u8]) -> Result<Option<String>, String> {
        let cfg = self.deliverer()?.config_arc();
        crate::auth::passdb::authenticate(&cfg.users.passwd_file, login, password)
            .map(|found| found.map(|u| u.name))
            .map_err(|e| e.to_string())
    }

    fn scripts(&self, user: &str) -> Result<Box<dyn Scripts + Send>, String> {
        let d = self.deliverer()?;
        let cfg = d.config_arc();
        let (local, domain) = user.rsplit_once('@').unwrap_or((user, ""));
        let found = d
            .lookup(local, domain)
            .map_err(|e| e.detail())?
            .ok_or_else(|| format!("{user}: no longer in the users file"))?;
        let limits = ScriptLimits {
            max_script_size: cfg.sieve.max_script_size as u64,
            max_scripts: cfg.managesieve.max_scripts,
            max_storage: cfg.managesieve.max_storage,
        };
        Ok(Box::new(UserScripts(ScriptStore::new(
            &cfg.sieve, &found, limits,
        ))))
    }
}

/// The store as the session sees it.
struct UserScripts(ScriptStore);

fn failure(e: ScriptError) -> Failure {
    if matches!(e, ScriptError::Io { .. } | ScriptError::Broken(_)) {
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
