//! ManageSieve (RFC 5804): users upload, check and switch their Sieve
//! scripts from their mail clients. `parse` reads the client's lines.
//! Must not deliver mail.

pub mod conn;
pub mod parse;
pub mod session;
