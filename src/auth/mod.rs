//! Authentication against the users' passwd-file, for ManageSieve: the
//! password schemes Dovecot writes there, and login name to user. Must not
//! keep passwords beyond one check, tell an unknown user from a wrong
//! password in its answer, or log; blocking (reads the file), never called
//! from async code directly.
//!
//! - [`password`]: one stored password field against one candidate.
//! - [`passdb`]: a login and password against the passwd-file, with the
//!   users module's name rules.

pub mod passdb;
pub mod password;

pub use passdb::{authenticate, AuthError, AuthUser};
pub use password::{verify, verify_with_default, SchemeError};
