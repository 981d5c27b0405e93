//! The capability drop of per-user delivery (`driver = "system"`): a root
//! process keeps CAP_SETUID and CAP_SETGID only, in every set, with the
//! securebits locked so that no exec can bring root's capabilities back.
//! Must run while the process has one thread (capabilities, securebits and
//! no_new_privs are per thread; threads started later inherit them), and
//! must not leave any other capability anywhere.

use std::os::raw::c_ulong;

/// CAP_SETGID (6) and CAP_SETUID (7): all a delivery thread needs to take
/// a user's file-system identity (`setfsuid`, `setfsgid`, `setgroups`).
pub const KEPT: u64 = (1 << 6) | (1 << 7);

// <linux/securebits.h>
const SECBIT_NOROOT: c_ulong = 1 << 0;
const SECBIT_NOROOT_LOCKED: c_ulong = 1 << 1;
const SECBIT_KEEP_CAPS_LOCKED: c_ulong = 1 << 5;
const SECBIT_NO_CAP_AMBIENT_RAISE: c_ulong = 1 << 6;
const SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED: c_ulong = 1 << 7;
/// Root gets no capabilities from exec (NOROOT), cannot keep them across
/// a uid change (KEEP_CAPS off, locked) and cannot raise ambient ones.
const SECUREBITS: c_ulong = SECBIT_NOROOT
    | SECBIT_NOROOT_LOCKED
    | SECBIT_KEEP_CAPS_LOCKED
    | SECBIT_NO_CAP_AMBIENT_RAISE
    | SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED;

/// <linux/capability.h>, version 3 (64-bit sets in two 32-bit words).
const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: i32,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// The capability sets and flags of a process, as /proc/PID/status shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Status {
    pub effective: u64,
    pub permitted: u64,
    pub inheritable: u64,
    pub bounding: u64,
    pub ambient: u64,
    pub no_new_privs: bool,
    pub threads: u64,
}

impl Status {
    /// Parses the text of /proc/PID/status; None when a field is missing.
    pub fn parse(text: &str) -> Option<Status> {
        let field = |key: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
                .map(str::trim)
        };
        let hex = |key: &str| u64::from_str_radix(field(key)?, 16).ok();
        let dec = |key: &str| field(key)?.parse::<u64>().ok();
        Some(Status {
            effective: hex("CapEff")?,
            permitted: hex("CapPrm")?,
            inheritable: hex("CapInh")?,
            bounding: hex("CapBnd")?,
            ambient: hex("CapAmb")?,
            no_new_privs: dec("NoNewPrivs")? == 1,
            threads: dec("Threads")?,
        })
    }

    /// This process's status now.
    pub fn current() -> Result<Status, String> {
        let text = std::fs::read_to_string("/proc/self/status")
            .map_err(|e| format!("/proc/self/status: {e}"))?;
        Status::parse(&text).ok_or_else(|| "/proc/self/status: a field is missing".into())
    }

    /// Only CAP_SETUID and CAP_SETGID, nowhere else anything, no new
    /// privileges by exec.
    pub fn is_setid_only(&self) -> bool {
        self.effective == KEPT
            && self.permitted == KEPT
            && self.bounding == KEPT
            && self.inheritable == 0
            && self.ambient == 0
            && self.no_new_privs
    }
}

/// Keeps CAP_SETUID and CAP_SETGID and gives up every other capability
/// for good; checked afterwards through /proc/self/status. Root's
/// supplementary groups go too. Fails unless running as root with one
/// thread.
pub fn keep_only_setid() -> Result<(), String> {
    if !nix::unistd::geteuid().is_root() {
        return Err("per-user delivery needs mailstow started as root".into());
    }
    if Status::current()?.threads != 1 {
        return Err("capabilities must be dropped while the process has one thread".into());
    }
    nix::unistd::setgroups(&[]).map_err(|e| format!("setgroups: {e}"))?;
    clear_ambient()?;
    lock_securebits()?;
    drop_bounding()?;
    set_sets(KEPT)?;
    prctl(libc::PR_SET_NO_NEW_PRIVS, 1).map_err(|e| format!("no_new_privs: {e}"))?;
    let now = Status::current()?;
    if !now.is_setid_only() {
        return Err(format!("capabilities not dropped as asked: {now:?}"));
    }
    Ok(())
}

fn prctl(option: libc::c_int, arg: c_ulong) -> std::io::Result<libc::c_int> {
    // SAFETY: prctl with integer arguments only; no memory is passed.
    let r = unsafe { libc::prctl(option, arg, 0 as c_ulong, 0 as c_ulong, 0 as c_ulong) };
    if r < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

fn clear_ambient() -> Result<(), String> {
    match prctl(
        libc::PR_CAP_AMBIENT,
        libc::PR_CAP_AMBIENT_CLEAR_ALL as c_ulong,
    ) {
        Ok(_) => Ok(()),
        // A kernel without ambient capabilities has none to clear.
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => Ok(()),
        Err(e) => Err(format!("clearing ambient capabilities: {e}")),
    }
}

/// Sets [`SECUREBITS`] unless already set (systemd's `SecureBits=` can set
/// them; setting them here needs CAP_SETPCAP).
fn lock_securebits() -> Result<(), String> {
    let now = prctl(libc::PR_GET_SECUREBITS, 0).map_err(|e| format!("securebits: {e}"))?;
    let now = now as c_ulong;
    if now & SECUREBITS == SECUREBITS {
        return Ok(());
    }
    prctl(libc::PR_SET_SECUREBITS, now | SECUREBITS)
        .map(|_| ())
        .map_err(|e| format!("setting securebits (needs CAP_SETPCAP): {e}"))
}

/// Drops every capability but [`KEPT`] from the bounding set; one already
/// gone (a systemd `CapabilityBoundingSet=`) is left alone, so CAP_SETPCAP
/// is needed only when there is something to drop.
fn drop_bounding() -> Result<(), String> {
    let last: u32 = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(40);
    for cap in 0..=last.min(63) {
        if KEPT & (1 << cap) != 0 {
            continue;
        }
        let present = prctl(libc::PR_CAPBSET_READ, cap.into())
            .map_err(|e| format!("reading bounding capability {cap}: {e}"))?;
        if present == 1 {
            prctl(libc::PR_CAPBSET_DROP, cap.into())
                .map_err(|e| format!("dropping capability {cap} from the bounding set: {e}"))?;
        }
    }
    Ok(())
}

/// Effective and permitted become `caps`, inheritable empty.
fn set_sets(caps: u64) -> Result<(), String> {
    let mut header = CapHeader {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    let word = |w: u32| CapData {
        effective: w,
        permitted: w,
        inheritable: 0,
    };
    let data = [word(caps as u32), word((caps >> 32) as u32)];
    // SAFETY: capset reads one header and two data structs, laid out as
    // <linux/capability.h> defines them for version 3.
    let r = unsafe {
        libc::syscall(
            libc::SYS_capset,
            &mut header as *mut CapHeader,
            data.as_ptr(),
        )
    };
    if r != 0 {
        return Err(format!("capset: {}", std::io::Error::last_os_error()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_reads_the_capability_lines_of_proc() {
        let text = "Name:\tmailstow\nThreads:\t1\nCapInh:\t0000000000000000\n\
                    CapPrm:\t00000000000000c0\nCapEff:\t00000000000000c0\n\
                    CapBnd:\t00000000000000c0\nCapAmb:\t0000000000000000\nNoNewPrivs:\t1\n";
        let s = Status::parse(text).unwrap();
        assert!(s.is_setid_only(), "{s:?}");
        assert_eq!(s.threads, 1);
        let root = text.replace("CapBnd:\t00000000000000c0", "CapBnd:\t000001ffffffffff");
        assert!(!Status::parse(&root).unwrap().is_setid_only());
        assert!(Status::parse("Name:\tx\n").is_none());
        // This test process (root, or not) has a status to read.
        assert!(Status::current().unwrap().threads >= 1);
    }
}
