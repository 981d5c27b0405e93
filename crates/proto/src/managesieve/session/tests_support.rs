//! Test support shared by the session and connection tests: an in-memory
//! store with the rules the protocol relies on, and a session config.
//! Must not be used outside tests.

use std::collections::BTreeMap;

use super::*;

/// Scripts in memory, with the store's rules the protocol relies on.
#[derive(Default)]
pub struct Memory {
    pub scripts: BTreeMap<String, Vec<u8>>,
    pub active: Option<String>,
}

impl Scripts for Memory {
    fn list(&mut self) -> Result<Vec<(String, bool)>, Failure> {
        Ok(self
            .scripts
            .keys()
            .map(|n| (n.clone(), self.active.as_deref() == Some(n)))
            .collect())
    }
    fn get(&mut self, name: &str) -> Result<Vec<u8>, Failure> {
        self.scripts
            .get(name)
            .cloned()
            .ok_or_else(|| Failure::new(Some("NONEXISTENT"), "There is no script by that name."))
    }
    fn put(&mut self, name: &str, script: &[u8]) -> Result<Vec<String>, Failure> {
        self.check(script)?;
        self.scripts.insert(name.into(), script.to_vec());
        Ok(Vec::new())
    }
    fn check(&mut self, script: &[u8]) -> Result<Vec<String>, Failure> {
        if script.starts_with(b"bogus") {
            return Err(Failure::new(None, "line 1: unknown command"));
        }
        Ok(if script.starts_with(b"#warn") {
            vec!["line 1: a warning".into()]
        } else {
            Vec::new()
        })
    }
    fn set_active(&mut self, name: Option<&str>) -> Result<(), Failure> {
        match name {
            Some(n) if !self.scripts.contains_key(n) => Err(Failure::new(
                Some("NONEXISTENT"),
                "There is no script by that name.",
            )),
            n => {
                self.active = n.map(str::to_owned);
                Ok(())
            }
        }
    }
    fn delete(&mut self, name: &str) -> Result<(), Failure> {
        if self.active.as_deref() == Some(name) {
            return Err(Failure::new(Some("ACTIVE"), "The script is active."));
        }
        self.scripts
            .remove(name)
            .map(|_| ())
            .ok_or_else(|| Failure::new(Some("NONEXISTENT"), "There is no script by that name."))
    }
    fn rename(&mut self, from: &str, to: &str) -> Result<(), Failure> {
        if self.scripts.contains_key(to) {
            return Err(Failure::new(
                Some("ALREADYEXISTS"),
                "A script by that name exists.",
            ));
        }
        let s = self.get(from)?;
        self.scripts.remove(from);
        self.scripts.insert(to.into(), s);
        if self.active.as_deref() == Some(from) {
            self.active = Some(to.into());
        }
        Ok(())
    }
    fn have_space(&mut self, _name: &str, size: u64) -> Result<(), Failure> {
        if size > 1000 {
            return Err(Failure::new(Some("QUOTA/MAXSIZE"), "Script too big."));
        }
        Ok(())
    }
}

pub fn config(starttls: bool, plaintext: bool) -> Config {
    Config {
        implementation: "mailstow".into(),
        extensions: "fileinto vacation".into(),
        max_redirects: 4,
        notify: "mailto".into(),
        starttls,
        plaintext_without_tls: plaintext,
        max_auth_failures: 3,
        max_unauthenticated_commands: 10,
    }
}
