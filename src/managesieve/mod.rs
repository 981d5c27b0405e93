//! ManageSieve (RFC 5804): users upload, check, list and activate their
//! Sieve scripts from their mail clients. Must not hold logic itself: only
//! the module list.
//!
//! - [`parse`]: the client's lines (atoms, strings, literals), bounded.
//! - [`session`]: the protocol state machine, sans I/O.
//! - [`conn`]: one connection on tokio (STARTTLS, login delay).
//! - [`backend`]: the passwd-file and the store behind a running server.
//! - [`store`]: one user's scripts in Pigeonhole's file layout (a script
//!   directory of `NAME.sieve` files, the active one a symlink), so that
//!   Dovecot's ManageSieve and mailstow can manage the same user.

pub mod backend;
pub mod conn;
pub mod parse;
pub mod session;
pub mod store;
