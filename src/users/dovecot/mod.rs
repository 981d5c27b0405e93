//! `[users] driver = "dovecot"`: recipients looked up in Dovecot's userdb
//! through its auth service's auth-userdb socket (the protocol Dovecot's
//! own LMTP uses), so that SQL, LDAP or any other userdb Dovecot reads
//! serves mailstow too. Blocking, from delivery threads only; must not
//! wait past `dovecot_timeout`, keep unbounded data from the socket, or
//! answer "no such user" for anything but a NOTFOUND.
//!
//! # Protocol (Dovecot 2.3 auth-master, userdb part)
//!
//! Client `VERSION\t1\t0`; server `VERSION\t1\t<minor>` and `SPID\t<pid>`.
//! Then per request `USER\t<id>\t<user>\tservice=lmtp`, answered by
//! `USER\t<id>\t<user>\tkey=value...`, `NOTFOUND\t<id>` or
//! `FAIL\t<id>[\treason=...]`; fields are tab-escaped (`wire`).
//!
//! # Lookups
//!
//! The name asked is `local@domain` (the domain lowercased, as Dovecot's
//! LMTP sends it), first with the full local part, then with the detail
//! split off by `recipient_delimiter` (the passwd-file driver's rules, see
//! `users::split_detail`). NOTFOUND for both is "no such user" (550); FAIL,
//! a timeout, a refused or missing socket, a protocol error or a reply
//! mailstow cannot deliver to (see `reply`) is a temporary failure (451).
//!
//! Connections are pooled (at most [`POOL_MAX`] idle ones kept); a pooled
//! connection that turns out closed is replaced once by a fresh one.
//! Results are cached (`cache_ttl`, `negative_cache_ttl`; failures never)
//! in at most [`CACHE_MAX`] entries; a reload builds a new Directory and
//! so starts with an empty cache.
//!
//! [`DovecotDirectory::users`] lists nobody: Dovecot's LIST command needs
//! userdb iteration, which SQL and LDAP userdbs offer only when configured
//! for it; admin commands name the user instead.

mod location;
mod reply;
pub(crate) mod wire;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use reply::Answer;
use wire::{escape_into, Conn, WireError};

use super::{split_detail, DovecotConfig, User, UsersConfig, UsersError};

/// Idle connections kept for reuse.
pub const POOL_MAX: usize = 8;
/// Cached lookups at most (found and not found together).
pub const CACHE_MAX: usize = 10_000;

/// The userdb behind Dovecot's auth-userdb socket.
#[derive(Debug)]
pub(crate) struct DovecotDirectory {
    client: Client,
    delimiters: Vec<char>,
    cache: Cache,
}

impl DovecotDirectory {
    /// Nothing is connected yet: Dovecot may start after mailstow, and a
    /// lookup while it is down is a temporary failure.
    pub(crate) fn open(cfg: &UsersConfig, d: &DovecotConfig) -> DovecotDirectory {
        DovecotDirectory {
            client: Client::new(&d.userdb_socket, d.timeout),
            delimiters: cfg.recipient_delimiter.chars().collect(),
            cache: Cache::new(d.cache_ttl, d.negative_cache_ttl),
        }
    }

    /// As `Directory::lookup`.
    pub(crate) fn lookup(&self, local: &str, domain: &str) -> Result<Option<User>, UsersError> {
        let domain = domain.to_ascii_lowercase();
        let key = (local.to_owned(), domain.clone());
        if let Some(hit) = self.cache.get(&key) {
            return Ok(hit);
        }
        let found = self.ask(local, &domain)?;
        self.cache.put(key, found.clone());
        Ok(found)
    }

    /// See the module doc.
    pub(crate) fn users(&self) -> Vec<User> {
        Vec::new()
    }

    fn ask(&self, local: &str, domain: &str) -> Result<Option<User>, UsersError> {
        if let Some(u) = self.ask_one(local, domain, None)? {
            return Ok(Some(u));
        }
        match split_detail(local, &self.delimiters) {
            Some((base, detail)) => self.ask_one(base, domain, Some(detail)),
            None => Ok(None),
        }
    }

    fn ask_one(
        &self,
        local: &str,
        domain: &str,
        detail: Option<&str>,
    ) -> Result<Option<User>, UsersError> {
        let name = if domain.is_empty() {
            local.to_owned()
        } else {
            format!("{local}@{domain}")
        };
        match self.client.user(&name)? {
            Answer::NotFound => Ok(None),
            Answer::Fail(reason) => Err(UsersError::Unavailable(format!(
                "dovecot userdb: lookup of {name} failed{}",
                reason.map(|r| format!(": {r}")).unwrap_or_default()
            ))),
            Answer::Found { name: got, fields } => reply::user(&got, &fields, domain, detail)
                .map(Some)
                .map_err(|reason| UsersError::Reply { user: got, reason }),
        }
    }
}

/// The auth-userdb client: a pool of connections and request ids.
#[derive(Debug)]
struct Client {
    path: PathBuf,
    timeout: Duration,
    /// Idle connections, shared by the delivery threads; held only to push
    /// or pop one, never during a request.
    pool: Mutex<Vec<Conn>>,
    next_id: AtomicU32,
}

impl Client {
    fn new(path: &Path, timeout: Duration) -> Client {
        Client {
            path: path.to_owned(),
            timeout,
            pool: Mutex::new(Vec::new()),
            next_id: AtomicU32::new(1),
        }
    }

    /// Ask for one user name; a pooled connection found closed is replaced
    /// by a fresh one once.
    fn user(&self, name: &str) -> Result<Answer, UsersError> {
        let deadline = Instant::now() + self.timeout;
        let pooled = self.pool().pop();
        let reused = pooled.is_some();
        let first = match pooled {
            Some(c) => Ok(c),
            None => self.connect(deadline),
        };
        let result = first.and_then(|c| self.request(c, name, deadline));
        let result = match result {
            Err(e) if reused && e.broken() => self
                .connect(deadline)
                .and_then(|c| self.request(c, name, deadline)),
            other => other,
        };
        result.map_err(|e| {
            UsersError::Unavailable(format!("dovecot userdb {}: {e}", self.path.display()))
        })
    }

    fn connect(&self, deadline: Instant) -> Result<Conn, WireError> {
        let mut c = Conn::connect(&self.path)?;
        handshake(&mut c, deadline)?;
        Ok(c)
    }

    /// One request on `c`; the connection goes back to the pool only after
    /// a complete, well-formed answer.
    fn request(&self, mut c: Conn, name: &str, deadline: Instant) -> Result<Answer, WireError> {
        let id = self.id();
        c.send(&user_request(id, name), deadline)?;
        let answer = reply::parse(&c.read_line(deadline)?, id)?;
        let mut pool = self.pool();
        if pool.len() < POOL_MAX {
            pool.push(c);
        }
        Ok(answer)
    }

    /// A request id, never 0.
    fn id(&self) -> u32 {
        loop {
            let id = self.next_id.fetch_add(1, Ordering::Relaxed);
            if id != 0 {
                return id;
            }
        }
    }

    fn pool(&self) -> std::sync::MutexGuard<'_, Vec<Conn>> {
        // A Vec of idle connections stays consistent whatever panicked.
        self.pool.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// `USER\t<id>\t<name>\tservice=lmtp\n`, the name escaped.
fn user_request(id: u32, name: &str) -> Vec<u8> {
    let mut line = format!("USER\t{id}\t").into_bytes();
    escape_into(&mut line, name.as_bytes());
    line.extend_from_slice(b"\tservice=lmtp\n");
    line
}

/// Send our VERSION and read the server's lines up to SPID; its major
/// version must be 1. At most a few lines: anything else is a protocol
/// error.
fn handshake(c: &mut Conn, deadline: Instant) -> Result<(), WireError> {
    c.send(b"VERSION\t1\t0\n", deadline)?;
    let mut version = false;
    for _ in 0..8 {
        let f = wire::fields(&c.read_line(deadline)?)?;
        match f.first().map(String::as_str) {
            Some("VERSION") if f.get(1).map(String::as_str) == Some("1") => version = true,
            Some("VERSION") => {
                return Err(WireError::Protocol(format!(
                    "server speaks version {:?}, not 1",
                    f.get(1)
                )))
            }
            Some("SPID") if version => return Ok(()),
            _ => {}
        }
    }
    Err(WireError::Protocol(
        "no VERSION and SPID in the handshake".into(),
    ))
}

/// For `mailstow config check`: connect, handshake, and ask for a name no
/// userdb holds, which must be answered NOTFOUND. Err: why not, for the
/// report.
pub fn probe_userdb(path: &Path, timeout: Duration) -> Result<(), String> {
    let client = Client::new(path, timeout);
    let probe = "mailstow-config-check-no-such-user@invalid";
    match client.user(probe) {
        Ok(Answer::NotFound) => Ok(()),
        Ok(Answer::Found { .. }) => Err(format!("the userdb has a user named {probe}")),
        Ok(Answer::Fail(reason)) => Err(format!(
            "a lookup failed{}",
            reason.map(|r| format!(": {r}")).unwrap_or_default()
        )),
        Err(e) => Err(e.to_string()),
    }
}

type Key = (String, String);

/// Lookup results with an expiry each; at most [`CACHE_MAX`] of them.
#[derive(Debug)]
struct Cache {
    ttl: Duration,
    negative_ttl: Duration,
    /// Shared by the delivery threads; held for a map operation only.
    map: Mutex<HashMap<Key, (Instant, Option<User>)>>,
}

impl Cache {
    fn new(ttl: Duration, negative_ttl: Duration) -> Cache {
        Cache {
            ttl,
            negative_ttl,
            map: Mutex::new(HashMap::new()),
        }
    }

    fn get(&self, key: &Key) -> Option<Option<User>> {
        let mut map = self.lock();
        match map.get(key) {
            Some((until, hit)) if *until > Instant::now() => Some(hit.clone()),
            Some(_) => {
                map.remove(key);
                None
            }
            None => None,
        }
    }

    fn put(&self, key: Key, value: Option<User>) {
        let ttl = if value.is_some() {
            self.ttl
        } else {
            self.negative_ttl
        };
        if ttl.is_zero() {
            return;
        }
        let now = Instant::now();
        let mut map = self.lock();
        if map.len() >= CACHE_MAX {
            map.retain(|_, (until, _)| *until > now);
        }
        if map.len() < CACHE_MAX {
            map.insert(key, (now + ttl, value));
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, (Instant, Option<User>)>> {
        // Entries are inserted and removed whole: a poisoned map is usable.
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests;
