//! The LMTP and SMTP protocols, sans I/O: command lines, addresses, replies,
//! the DATA receiver and the session state machine. Bytes go in, events come out;
//! nothing here touches sockets, files, clocks or logs.

pub mod address;
pub mod command;
pub mod data;
pub mod reply;
pub mod session;

pub use reply::Reply;
pub use session::{Event, Mode, Session, SessionConfig, Transaction};
