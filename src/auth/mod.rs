//! Authentication for ManageSieve: against the users' passwd-file (the
//! password schemes Dovecot writes there, and login name to user), or by
//! Dovecot's auth service when users come from its userdb. Must not
//! keep passwords beyond one check, tell an unknown user from a wrong
//! password in its answer, or log; blocking (reads the file), never called
//! from async code directly.
//!
//! - [`password`]: one stored password field against one candidate.
//! - [`passdb`]: a login and password against the passwd-file, with the
//!   users module's name rules.
//! - [`dovecot`]: a login and password relayed to Dovecot's auth-client
//!   socket.

pub mod dovecot;
pub mod passdb;
pub mod password;

pub use passdb::{authenticate, AuthError, AuthUser};
pub use password::{verify, verify_with_default, SchemeError};

/// CPU time the calling thread has used: the work a check did, which wall
/// time would blur with whatever else a loaded machine is running.
#[cfg(test)]
fn thread_cpu_time() -> std::time::Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid clock id and a timespec to fill.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime: {}", std::io::Error::last_os_error());
    std::time::Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}
