//! mailstow: the last hop of email. An MTA hands a message over LMTP, SMTP
//! or a pipe; mailstow finds each recipient and writes the message durably into
//! the recipient's Maildir++. This file is the map of the crate; it holds no
//! logic.
//!
//! - [`config`]: the TOML file, validated once into typed values.
//! - [`proto`]: LMTP and SMTP commands, addresses, replies, the DATA
//!   receiver and the session state machine: bytes in, events out. No I/O.
//! - [`server`]: tokio listeners (TCP, unix, sockets handed over by
//!   systemd), the connection driver, STARTTLS, timeouts, connection
//!   limits, graceful shutdown and sd_notify.
//! - [`users`]: recipient address to user: Dovecot passwd-file, recipient
//!   delimiter, domain case.
//! - [`deliver`]: the delivery pool (threads), the per-recipient pipeline,
//!   added headers, the spool and the one outcome-to-reply table.
//! - [`store`]: the Maildir++ writer: unique names, folders (modified
//!   UTF-7), subscriptions, durability (tmp, fsync, rename, fsync dir).
//! - [`outbound`]: redirects, vacation replies and delivery status
//!   notifications handed to the MTA.
//! - [`managesieve`]: ManageSieve (RFC 5804): the protocol, and the user's
//!   script store in Pigeonhole's layout.
//! - [`metrics`]: Prometheus metrics.
//! - [`telemetry`]: tracing setup (text or JSON).

pub mod auth;
pub mod config;
pub mod deliver;
pub mod managesieve;
pub mod metrics;
pub mod outbound;
pub mod privilege;
pub mod server;
pub mod telemetry;
pub mod users;
