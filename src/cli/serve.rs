//! `mailstow serve`: bind the listeners as root, give root up for good,
//! start the runtime and run the service until it is told to stop. Must
//! not hold service logic (the server does); it orders the steps that must
//! happen while the process has one thread.

use std::path::PathBuf;
use std::sync::Arc;

use mailstow::config::Config;

use super::common::setup;
use super::exit::{EX_CONFIG, EX_OK, EX_SOFTWARE};

pub fn serve(config: PathBuf) -> u8 {
    // SIGHUP means reload; until the server catches it, one must not stop
    // the process (its default action). The configuration is read below,
    // so a reload asked for before that is not lost.
    // SAFETY: SIG_IGN installs no handler code; only one thread exists.
    unsafe {
        let _ = nix::sys::signal::signal(
            nix::sys::signal::Signal::SIGHUP,
            nix::sys::signal::SigHandler::SigIgn,
        );
    }
    let cfg = match setup(&config, true) {
        Ok(c) => c,
        Err(code) => return code,
    };
    tune_malloc();
    // Bind (ports below 1024 need root), then give root up while this is
    // still the only thread.
    let bound = match mailstow::server::bind_all(&cfg) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("mailstow: {e:#}");
            return EX_CONFIG;
        }
    };
    let managesieve = match mailstow::server::managesieve::bind(&cfg) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("mailstow: {e:#}");
            return EX_CONFIG;
        }
    };
    if let Err(e) = become_run_as(&cfg) {
        tracing::error!("{e}");
        eprintln!("mailstow: {e}");
        return EX_CONFIG;
    }
    // Leftovers of a crashed run, swept on a thread of its own (after the
    // privilege drop, which needs this to be the only thread). Not with
    // per-user rights: the mailboxes are in the homes, and the sweeper
    // would run with no user's rights (Dovecot cleans tmp/ there too).
    if !cfg.users.per_user_rights() {
        mailstow_maildir::tmpclean::spawn(&cfg.storage.mail_root, &cfg.hostname);
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("mailstow: cannot start the runtime: {e}");
            return EX_SOFTWARE;
        }
    };
    let sieve = (!managesieve.is_empty()).then(|| mailstow::server::SieveService {
        listeners: managesieve,
        backend: Box::new(|current| {
            Arc::new(mailstow::managesieve::FileBackend::new(current))
                as Arc<dyn mailstow::server::managesieve::Backend>
        }),
    });
    match rt.block_on(mailstow::server::run(cfg, config, bound, sieve)) {
        Ok(()) => EX_OK,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("mailstow: {e:#}");
            EX_CONFIG
        }
    }
}

/// With `user` configured and running as root: create the mail root and
/// spool directory for that account if missing, then become it for good.
/// Not root: nothing to give up (a warning when `user` names someone else).
fn become_run_as(cfg: &Config) -> Result<(), String> {
    if cfg.users.per_user_rights() {
        return keep_setid_only(cfg);
    }
    let Some(acct) = &cfg.run_as else {
        return Ok(());
    };
    if !nix::unistd::geteuid().is_root() {
        if nix::unistd::geteuid().as_raw() != acct.uid {
            tracing::warn!(uid = acct.uid, "not started as root: `user` is ignored");
        }
        return Ok(());
    }
    for dir in [&cfg.storage.mail_root, &cfg.delivery.spool_dir] {
        if !dir.exists() {
            std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
            std::os::unix::fs::chown(dir, Some(acct.uid), Some(acct.gid))
                .map_err(|e| format!("chown {}: {e}", dir.display()))?;
        }
    }
    mailstow::privilege::drop_to(acct)?;
    tracing::info!(
        uid = acct.uid,
        gid = acct.gid,
        "running as an unprivileged user"
    );
    Ok(())
}

/// Per-user rights (`driver = "system"`; see `mailstow::privilege`): the
/// spool directory must be root's and closed to others (the async side
/// writes it without DAC override), then only CAP_SETUID and CAP_SETGID
/// stay. Not root: refused, nobody else's mailbox could be written.
fn keep_setid_only(cfg: &Config) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt;
    if !nix::unistd::geteuid().is_root() {
        return Err("[users] driver = \"system\" needs mailstow started as root (it keeps only CAP_SETUID and CAP_SETGID, and writes each mailbox as its owner)".into());
    }
    let spool = &cfg.delivery.spool_dir;
    if !spool.exists() {
        std::fs::create_dir_all(spool).map_err(|e| format!("creating {}: {e}", spool.display()))?;
        std::fs::set_permissions(spool, std::os::unix::fs::PermissionsExt::from_mode(0o700))
            .map_err(|e| format!("chmod {}: {e}", spool.display()))?;
    }
    let m = std::fs::metadata(spool).map_err(|e| format!("{}: {e}", spool.display()))?;
    let sticky_shared = m.mode() & 0o1000 != 0; // /tmp: root-owned, sticky
    if m.uid() != 0 || (m.mode() & 0o022 != 0 && !sticky_shared) {
        return Err(format!(
            "{}: the spool directory must belong to root and not be writable by others with driver = \"system\"",
            spool.display()
        ));
    }
    mailstow::privilege::keep_only_setid()?;
    tracing::info!("per-user rights: keeping only CAP_SETUID and CAP_SETGID");
    if cfg.outbound.smtp.is_none() {
        tracing::warn!("[outbound] uses sendmail, which runs as uid 0 with no capabilities and no_new_privs (a set-gid postdrop gets nothing): Sieve redirects and vacation replies may fail; set [outbound] smtp");
    }
    Ok(())
}

/// The server's allocator settings (glibc), set before the runtime and the
/// delivery threads start:
/// blocks from 128 KiB up (message chunks, spools, SQLite caches) are
/// mapped and returned to the system when freed, instead of glibc raising
/// that threshold after the first such free and keeping them in per-thread
/// arenas; and at most 4 arenas for the many delivery threads. Measured:
/// 7 MiB less RSS after a run of 100 KiB messages.
fn tune_malloc() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator parameters (glibc takes its own
    // locks); it touches no memory of ours.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
        libc::mallopt(libc::M_ARENA_MAX, 4);
    }
}
