//! Fuzz the ManageSieve reader and session together: any bytes from a
//! client, cut into reads at any points, with credentials accepted and a
//! store in memory. Never a panic; every reply is whole CRLF-ended lines
//! (or a literal); the reader holds at most a line and a literal.
#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;
use mailstow_proto::managesieve::parse::{Limits, Reader};
use mailstow_proto::managesieve::session::{Action, Config, Failure, Scripts, Session};

#[derive(Default)]
struct Memory(BTreeMap<String, Vec<u8>>, Option<String>);

fn none(name: &str) -> Failure {
    Failure::new(Some("NONEXISTENT"), format!("no script {name}"))
}

impl Scripts for Memory {
    fn list(&mut self) -> Result<Vec<(String, bool)>, Failure> {
        Ok(self.0.keys().map(|n| (n.clone(), self.1.as_deref() == Some(n))).collect())
    }
    fn get(&mut self, name: &str) -> Result<Vec<u8>, Failure> {
        self.0.get(name).cloned().ok_or_else(|| none(name))
    }
    fn put(&mut self, name: &str, script: &[u8]) -> Result<Vec<String>, Failure> {
        self.0.insert(name.into(), script.to_vec());
        Ok(Vec::new())
    }
    fn check(&mut self, _script: &[u8]) -> Result<Vec<String>, Failure> {
        Ok(vec!["a\r\nwarning".into()])
    }
    fn set_active(&mut self, name: Option<&str>) -> Result<(), Failure> {
        self.1 = name.map(str::to_owned);
        Ok(())
    }
    fn delete(&mut self, name: &str) -> Result<(), Failure> {
        self.0.remove(name).map(|_| ()).ok_or_else(|| none(name))
    }
    fn rename(&mut self, from: &str, to: &str) -> Result<(), Failure> {
        let s = self.0.remove(from).ok_or_else(|| none(from))?;
        self.0.insert(to.into(), s);
        Ok(())
    }
    fn have_space(&mut self, _name: &str, _size: u64) -> Result<(), Failure> {
        Ok(())
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&cut, data)) = data.split_first() else {
        return;
    };
    let limits = Limits {
        max_line: 256,
        max_literal: 512,
    };
    let mut reader = Reader::new(limits);
    let mut session = Session::new(Config {
        implementation: "fuzz".into(),
        extensions: "fileinto".into(),
        max_redirects: 4,
        notify: "mailto".into(),
        starttls: cut & 1 == 1,
        plaintext_without_tls: cut & 2 == 2,
        max_auth_failures: 3,
        max_unauthenticated_commands: 50,
    });
    let mut store = Memory::default();
    let step = usize::from(cut >> 2).max(1);
    for part in data.chunks(step) {
        reader.push(part);
        while let Some(line) = reader.next_line() {
            let scripts: Option<&mut dyn Scripts> = if session.user().is_some() {
                Some(&mut store)
            } else {
                None
            };
            let (out, action) = session.handle(line, scripts);
            assert!(out.is_empty() || out.ends_with(b"\r\n"), "{out:?}");
            match action {
                Action::Authenticate { authc, .. } => {
                    let ok = authc.len() % 2 == 0;
                    let (out, next) = session.authenticated(Ok(ok.then_some(authc)));
                    assert!(out.ends_with(b"\r\n"));
                    if next == Action::Close {
                        return;
                    }
                }
                Action::StartTls => {
                    assert!(session.tls_started().ends_with(b"\r\n"));
                }
                Action::Close => return,
                Action::None => {}
            }
        }
    }
});
