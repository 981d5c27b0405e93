//! ManageSieve (RFC 5804): users upload, check, list and activate their
//! Sieve scripts. This directory holds the script store now; the protocol
//! layer comes beside it. Must not hold logic itself: only the module list.
//!
//! - [`store`]: one user's scripts in Pigeonhole's file layout (a script
//!   directory of `NAME.sieve` files, the active one a symlink), so that
//!   Dovecot's ManageSieve and mailstow can manage the same user.

pub mod store;
