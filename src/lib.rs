//! mailstow: the last hop of email. An MTA hands a message over LMTP, SMTP
//! or a pipe; mailstow finds each recipient, runs the recipient's Sieve
//! script and writes the message durably into the recipient's Maildir++.
//! This package glues the layers together; the layers themselves are crates
//! of their own, which this one depends on and none of which depends on it:
//!
//! - `mailstow_proto`: LMTP and SMTP sessions and the ManageSieve reader
//!   and session, sans I/O: bytes in, events out.
//! - `mailstow_maildir`: the durable Maildir++ writer and everything on
//!   disk beside it (names, keywords, quota, subscriptions, tmp/ cleaning,
//!   Pigeonhole's script layout).
//! - `mailstow_index`: the per-mailbox SQLite index, dovecot-uidlist and
//!   the per-user Sieve state.
//! - `mailstow_sieve`: the Sieve host; it decides, the delivery acts.
//!
//! This file is the map of the package; it holds no logic.
//!
//! - [`config`]: the TOML file, validated once into typed values; `config
//!   check`'s checks; the effective configuration printed back.
//! - [`users`]: recipient address to user: Dovecot passwd-file or the
//!   system's accounts, recipient delimiter, domain case.
//! - [`auth`]: password schemes of the passwd-file, and logins against it.
//! - [`privilege`]: giving root up for good, while the process has one
//!   thread; or keeping only CAP_SETUID/CAP_SETGID and acting as each
//!   mailbox's owner per delivery thread (`driver = "system"`).
//! - [`server`]: tokio listeners (TCP, unix, sockets handed over by
//!   systemd), the LMTP/SMTP and ManageSieve connection drivers, STARTTLS,
//!   timeouts, connection limits, reload, graceful shutdown and sd_notify.
//! - [`proxy`]: LMTP forwarded per recipient to the node that holds the
//!   mailbox (`host`/`proxy` user fields), loop and maintenance checks.
//! - [`deliver`]: the delivery pool (threads, the one bridge from async),
//!   the per-recipient pipeline, the one executor of Sieve plans (also for
//!   `sieve filter --apply`), added headers, the spool and the one
//!   outcome-to-reply table.
//! - [`outbound`]: redirects, vacation replies, notifications and delivery
//!   status notifications handed to the MTA.
//! - [`managesieve`]: the ManageSieve backend: session settings, logins,
//!   each user's scripts.
//! - [`metrics`]: Prometheus metrics.
//! - [`telemetry`]: tracing setup (text or JSON).
//!
//! The command line is the binary's (src/cli/): it holds no logic.

pub mod auth;
pub mod config;
pub mod deliver;
pub mod managesieve;
pub mod metrics;
pub mod outbound;
pub mod privilege;
pub mod proxy;
pub mod server;
pub mod telemetry;
pub mod users;
