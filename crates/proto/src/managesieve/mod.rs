//! ManageSieve (RFC 5804), sans I/O: the client's lines and the session
//! state machine. Holds only the module list.
//!
//! - [`parse`]: the client's lines (atoms, strings, literals), bounded.
//! - [`session`]: the protocol state machine; scripts and credentials are
//!   the host's, behind traits.

pub mod parse;
pub mod session;
