//! More than one machine: LMTP forwarded per recipient to the node that
//! holds the recipient's mailbox (as Dovecot's lmtp proxy does). Async
//! (tokio), called from the connection driver. Must not know about
//! Maildir, Sieve or the index, and must not hold a backend's reply
//! unbounded or wait for it unbounded.
//!
//! - [`route`]: a user entry's `host`/`port`/`proxy`/`proxy_maybe`/
//!   `tempfail` fields read against `[proxy]`: a pure decision.
//! - [`client`]: one LMTP connection to a backend, every read bounded in
//!   size and time.
//! - [`pool`]: idle backend connections kept for the next transaction.
//! - [`forward`]: one client transaction's legs, one per backend: MAIL and
//!   RCPT at RCPT time, the data after the client's data, replies relayed.

pub mod client;
pub mod forward;
pub mod pool;
pub mod route;

pub use forward::{Forwarder, MailInfo};
pub use pool::Pool;
pub use route::{route, Backend, Route};

use std::hash::{BuildHasher, Hasher};
use std::sync::OnceLock;

/// This process among proxy nodes: a random token it adds to
/// `XMAILSTOW-HOPS` when it forwards, and looks for in what it receives.
/// Random, not the host name: nodes often share one configured name.
pub fn node_token() -> &'static str {
    static TOKEN: OnceLock<String> = OnceLock::new();
    TOKEN.get_or_init(|| {
        // RandomState is seeded from the system's randomness.
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u32(std::process::id());
        format!("n{:016x}", h.finish())
    })
}

/// Has this transaction passed through us already, or through too many
/// proxies? Then forwarding it again would be a loop.
pub fn is_loop(hops: &[String]) -> bool {
    hops.len() >= mailstow_proto::command::MAX_HOPS || hops.iter().any(|h| h == node_token())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_own_token_or_too_many_hops_is_a_loop() {
        assert!(!is_loop(&[]));
        assert!(!is_loop(&["n0".into()]));
        assert!(is_loop(&["n0".into(), node_token().into()]));
        assert!(is_loop(&vec!["n0".to_owned(); 16]));
        assert!(node_token().len() <= mailstow_proto::command::MAX_HOP_LEN);
    }
}
