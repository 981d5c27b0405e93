//! Idle backend connections kept between transactions, per backend, newest
//! first, each for a short while only (a backend closes idle sessions
//! itself). Shared by every client connection. Must not do I/O: a
//! connection taken out may have died meanwhile, and the caller retries on
//! a fresh one.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::client::Conn;

/// How long an idle connection is kept (well under the backends' own idle
/// timeout, 5 minutes by default).
const IDLE_LIFETIME: Duration = Duration::from_secs(30);

/// The idle connections, by backend key (`host:port`).
#[derive(Debug, Default)]
pub struct Pool {
    /// Held only to push or pop: never across an await.
    idle: Mutex<HashMap<String, Vec<(Conn, Instant)>>>,
}

impl Pool {
    /// An idle connection to `key` that is young enough, if any.
    pub fn take(&self, key: &str) -> Option<Conn> {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let list = idle.get_mut(key)?;
        while let Some((conn, since)) = list.pop() {
            if since.elapsed() < IDLE_LIFETIME {
                return Some(conn);
            }
        }
        None
    }

    /// Keep `conn` (between transactions) unless `max` are kept already.
    pub fn put(&self, key: &str, conn: Conn, max: usize) {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let list = idle.entry(key.to_owned()).or_default();
        list.retain(|(_, since)| since.elapsed() < IDLE_LIFETIME);
        if list.len() < max {
            list.push((conn, Instant::now()));
        }
    }
}
