//! A user's Sieve state (duplicate-tracking and vacation ids) for one
//! delivery, opened on first use: most deliveries never need it. Must not
//! decide what an id means (the Sieve host does).

use std::time::SystemTime;

use mailstow_index::state::UserState;
use mailstow_maildir::Maildir;

use crate::users::User;

/// The user's Sieve state, opened on first use (most deliveries never need
/// it).
pub(super) struct LazyState<'a> {
    user: &'a User,
    /// The state lives in the home, which the Maildir's creation makes.
    maildir: &'a Maildir,
    state: std::cell::RefCell<Option<UserState>>,
}

impl<'a> LazyState<'a> {
    pub(super) fn new(user: &'a User, maildir: &'a Maildir) -> LazyState<'a> {
        LazyState {
            user,
            maildir,
            state: std::cell::RefCell::new(None),
        }
    }

    fn with<T>(&self, f: impl FnOnce(&UserState) -> Result<T, String>) -> Result<T, String> {
        let mut slot = self.state.borrow_mut();
        if slot.is_none() {
            if !self.user.home.is_dir() {
                self.maildir.create().map_err(|e| e.to_string())?;
            }
            *slot = Some(
                UserState::open(&self.user.home, self.user.owner()).map_err(|e| e.to_string())?,
            );
        }
        match slot.as_ref() {
            Some(s) => f(s),
            None => Err("state unavailable".into()),
        }
    }

    pub(super) fn seen(&self, id: &str) -> Result<bool, String> {
        self.with(|s| s.seen(id, SystemTime::now()).map_err(|e| e.to_string()))
    }

    /// Record after delivery; a failure is logged (the mail is stored).
    pub(super) fn record(&self, id: &str, secs: u64) {
        let r = self.with(|s| {
            s.record(id, std::time::Duration::from_secs(secs), SystemTime::now())
                .map_err(|e| e.to_string())
        });
        if let Err(e) = r {
            tracing::warn!(user = %self.user.name, error = %e, "could not record a duplicate-tracking id");
        }
    }
}
