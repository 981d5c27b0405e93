//! Delivery: the pool of delivery threads, the per-recipient pipeline
//! (lookup result -> folder -> added headers -> Maildir store -> outcome),
//! the copies of one transaction that share one file,
//! the spool, the outcome table and SMTP's one reply (with its report to
//! the sender). Nothing here is async and nothing here
//! parses protocol lines; a job handed to the pool always runs to its end.

mod confine;
mod envelope;
mod execute;
mod folders;
pub mod headers;
pub mod indexer;
pub mod lead;
pub mod log;
pub mod outcome;
pub mod pipeline;
pub mod pool;
mod quota;
pub mod refilter;
pub mod report;
mod shared;
pub mod spool;
mod state;

pub use envelope::{Envelope, Recipient};
pub use execute::Refiled;
pub use folders::Folders;
pub use outcome::{Failure, RcptOutcome};
pub use pipeline::Deliverer;
pub use pool::{Job, Pool};
pub use spool::Spool;
