//! ManageSieve (RFC 5804): users upload, check, list and activate their
//! Sieve scripts from their mail clients. Must not hold logic itself: only
//! the module list.
//!
//! The protocol itself (the line reader and the session, sans I/O) is
//! `mailstow_proto::managesieve`.
//! - [`conn`]: one connection on tokio (STARTTLS, login delay).
//! - [`backend`]: the passwd-file and each user's scripts behind a running
//!   server (`mailstow_maildir::sieve_scripts`: Pigeonhole's layout, so that
//!   Dovecot's ManageSieve and mailstow can manage the same user).

pub mod backend;
pub mod conn;
