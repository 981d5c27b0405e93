//! The command line's exit codes: the sysexits that MTAs read (pipe mode
//! maps each recipient outcome to one, see `RcptOutcome::exit_code`), and
//! the plain 1 of a check that found problems. Must not hold anything but
//! the codes.

pub use mailstow::deliver::outcome::{
    EX_CONFIG, EX_DATAERR, EX_NOINPUT, EX_NOUSER, EX_OK, EX_SOFTWARE, EX_TEMPFAIL, EX_USAGE,
};

/// `sieve check` or `index verify` found a script that does not compile or
/// an index that differs.
pub const FOUND_PROBLEMS: u8 = 1;

/// sysexits' EX_UNAVAILABLE: a program the command needs (doveconf) is
/// missing or failed.
pub const EX_UNAVAILABLE: u8 = 69;

/// sysexits' EX_CANTCREAT: the output file cannot be written.
pub const EX_CANTCREAT: u8 = 73;
