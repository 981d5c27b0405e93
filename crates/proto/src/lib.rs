//! Mail delivery protocols, sans I/O: LMTP (RFC 2033) and SMTP (RFC 5321)
//! sessions for a final-delivery server, and the ManageSieve (RFC 5804)
//! reader and session. Bytes go in, events come out; the host answers the
//! events. Nothing here touches sockets, files, clocks or logs, and nothing
//! depends on an async runtime.
//!
//! - [`address`]: mailboxes and paths (RFC 5321 4.1.2, SMTPUTF8), bounded.
//! - [`command`]: command lines and their parameters.
//! - [`data`]: the DATA receiver (dot-unstuffing, CRLF.CRLF only).
//! - [`date`]: RFC 5322 dates for trace fields, ISO dates for listings.
//! - [`reply`]: replies with enhanced status codes (RFC 3463).
//! - [`session`]: the LMTP/SMTP state machine.
//! - [`managesieve`]: the ManageSieve line reader and session.
//!
//! # Example: an LMTP session driven by bytes
//!
//! The host feeds what it read, drains [`Session::poll`], and answers each
//! request before polling on. Here every recipient is accepted and every
//! delivery succeeds; a real host looks the recipient up and stores the
//! body it collected from the `Body` events.
//!
//! ```
//! use mailstow_proto::{Event, Mode, Reply, Session, SessionConfig};
//!
//! let cfg = SessionConfig {
//!     hostname: "mx.example.org".into(),
//!     mode: Mode::Lmtp,
//!     starttls: false,
//!     max_message_size: 10 << 20,
//!     max_recipients: 100,
//!     max_line_length: 4096,
//!     max_commands: 1000,
//!     max_errors: 10,
//! };
//! // The host's description of a recipient: here just the address.
//! let mut s: Session<String> = Session::new(cfg);
//! // What the host writes to the client, as it would go on the wire.
//! let mut out = Vec::new();
//! s.greeting().write_to(&mut out);
//! let mut body = Vec::new();
//! s.feed(b"LHLO client.example\r\nMAIL FROM:<a@example.net>\r\n\
//!          RCPT TO:<b@example.org>\r\nDATA\r\n\
//!          Subject: hi\r\n\r\nhello\r\n.\r\nQUIT\r\n");
//! while let Some(ev) = s.poll() {
//!     match ev {
//!         Event::Reply(r) => r.write_to(&mut out),
//!         Event::CheckRecipient { rcpt, .. } => s.rcpt_checked(Ok(rcpt.to_string())),
//!         Event::Body(bytes) => body.extend_from_slice(&bytes),
//!         Event::Deliver(tx) => {
//!             let replies = tx.recipients.iter().map(|_| Reply::new(250, "2.0.0", "Saved"));
//!             s.delivered(replies.collect());
//!         }
//!         _ => {}
//!     }
//! }
//! assert_eq!(body, b"Subject: hi\r\n\r\nhello\r\n");
//! let out = String::from_utf8(out).unwrap();
//! assert!(out.starts_with("220 mx.example.org "));
//! assert!(out.contains("\r\n250 2.0.0 Saved\r\n"));
//! assert!(out.ends_with("221 2.0.0 mx.example.org closing connection\r\n"));
//! ```

pub mod address;
pub mod command;
pub mod data;
pub mod date;
pub mod managesieve;
pub mod reply;
pub mod session;

pub use reply::Reply;
pub use session::{Event, MailView, Mode, Session, SessionConfig, Transaction};
