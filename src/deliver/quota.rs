//! Quota for a delivery: a user's rules (the configuration's, replaced
//! rule by rule by the passwd-file's `userdb_quota_rule<N>`, as Dovecot
//! chains them), the check before anything is stored, and the counting in
//! maildirsize after. Blocking (reads and appends maildirsize, with the
//! user's rights). Must not store or refuse mail itself: it answers, the
//! pipeline acts.

use mailstow_maildir::quota;

use super::outcome::Failure;
use super::pipeline::Deliverer;
use crate::config::{OverQuota, QuotaResource, QuotaWarning};
use crate::users::User;

impl Deliverer {
    /// The user's quota rules, chained as Dovecot reads `quota_rule`,
    /// `quota_rule2`, ...: rule N is the passwd-file's `userdb_quota_rule<N>`
    /// extra field if the user has one, else `[quota] rules[N-1]`; the chain
    /// ends at the first missing or empty rule. A rule that does not parse
    /// is left out with a warning.
    pub fn quota_rules(&self, user: &User) -> quota::Rules {
        let mut chain: std::collections::BTreeMap<usize, &str> = self
            .cfg
            .quota
            .rules
            .iter()
            .enumerate()
            .map(|(i, r)| (i + 1, r.as_str()))
            .collect();
        for (key, value) in &user.extra {
            let k = key.strip_prefix("userdb_").unwrap_or(key);
            let n = match k.strip_prefix("quota_rule") {
                Some("") => 1,
                // quota_rule2, quota_rule3, ...; never quota_rule1 or 02.
                Some(digits) => match digits.parse::<usize>() {
                    Ok(n) if n >= 2 && n.to_string() == digits => n,
                    _ => continue,
                },
                None => continue,
            };
            chain.insert(n, value);
        }
        let mut rules = quota::Rules::default();
        for n in 1.. {
            let Some(rule) = chain.remove(&n).filter(|r| !r.is_empty()) else {
                break;
            };
            if let Err(e) = rules.apply(rule) {
                tracing::warn!(user = %user.name, rule = %rule, error = %e, "quota rule ignored");
            }
        }
        if let Some((n, rule)) = chain.iter().find(|(_, r)| !r.is_empty()) {
            tracing::warn!(user = %user.name, rule = %rule, "quota_rule{n} ignored: it does not follow an earlier rule (Dovecot stops at the first gap)");
        }
        rules
    }

    /// Would one more message of `size` bytes fit into INBOX (the check at
    /// RCPT, as Dovecot's LMTP makes it with `lmtp_rcpt_check_quota`)? The
    /// rules when it does; `OverQuota` when it does not. Blocking (reads
    /// maildirsize).
    pub fn quota_check(&self, user: &User, size: u64) -> Result<quota::Rules, Failure> {
        let _rights = self.act_as(user)?;
        self.quota_check_stores(user, &[("INBOX", size)])
    }

    /// Would every copy fit, each `(folder, size)` checked against its
    /// folder's limit after the copies before it? A copy into a folder
    /// whose rule is `ignore` is neither checked nor counted. A Maildir
    /// that does not exist yet uses nothing, and is not created here.
    pub(super) fn quota_check_stores(
        &self,
        user: &User,
        stores: &[(&str, u64)],
    ) -> Result<quota::Rules, Failure> {
        let rules = self.quota_rules(user);
        if rules.is_unlimited() {
            return Ok(rules);
        }
        let mut used = self.quota_usage(user, &rules)?;
        for &(folder, size) in stores {
            if !rules.counts(folder) {
                continue;
            }
            if quota::over(&rules.limit_for(folder), &used, size) {
                return Err(Failure::OverQuota {
                    temporary: self.cfg.quota.over_quota == OverQuota::Temporary,
                });
            }
            used.bytes = used.bytes.saturating_add(size);
            used.messages += 1;
        }
        Ok(rules)
    }

    /// The usage of the user's Maildir: zero when there is none yet (its
    /// first delivery creates it); read from maildirsize otherwise. Any
    /// other error (not a directory, no permission) is a temporary failure.
    fn quota_usage(&self, user: &User, rules: &quota::Rules) -> Result<quota::Usage, Failure> {
        let failure =
            |e: std::io::Error| Failure::Io(format!("quota {}: {e}", user.maildir.display()));
        match std::fs::metadata(&user.maildir) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(quota::Usage::default())
            }
            Err(e) => return Err(failure(e)),
            Ok(_) => {}
        }
        quota::usage(&user.maildir, rules, self.cfg.storage.folder_encoding).map_err(failure)
    }

    /// Count a copy stored in `folder` in maildirsize: appended when the
    /// file exists (even without a limit, so that a file Dovecot keeps stays
    /// right), created on first use when there is a limit; not at all when
    /// the folder is ignored.
    pub(super) fn quota_count(&self, user: &User, rules: &quota::Rules, folder: &str, size: u64) {
        if !rules.counts(folder) {
            return;
        }
        let r = if user.maildir.join("maildirsize").exists() {
            quota::add(&user.maildir, size as i64, 1)
        } else if !rules.is_unlimited() {
            quota::recalculate(&user.maildir, rules, self.cfg.storage.folder_encoding).map(|_| ())
        } else {
            return;
        };
        if let Err(e) = r {
            tracing::warn!(user = %user.name, error = %e, "could not update maildirsize; it is recalculated later");
        }
    }

    /// The usage before a delivery, when a `quota_warning` could fire.
    pub(super) fn quota_warn_from(
        &self,
        user: &User,
        rules: &quota::Rules,
    ) -> Option<quota::Usage> {
        if self.cfg.quota.warnings.is_empty() || rules.is_unlimited() {
            return None;
        }
        self.quota_usage(user, rules).ok()
    }

    /// Runs the first `quota_warning` whose threshold the delivery took the
    /// usage across, from below to at least it (never on the way down), as
    /// the mailbox owner, not waited for; logged.
    pub(super) fn quota_warn(&self, user: &User, rules: &quota::Rules, before: quota::Usage) {
        let Ok(after) = self.quota_usage(user, rules) else {
            return;
        };
        let crossed = |w: &&QuotaWarning| {
            let (limit, was, now) = match w.resource {
                QuotaResource::Storage => (rules.limit.bytes, before.bytes, after.bytes),
                QuotaResource::Messages => (rules.limit.messages, before.messages, after.messages),
            };
            limit.is_some_and(|l| {
                // Rounded down, as Dovecot computes a relative limit
                // (messages=50% of 11 is 5).
                let at = l.saturating_mul(w.percent) / 100;
                was < at && now >= at
            })
        };
        if let Some(w) = self.cfg.quota.warnings.iter().find(crossed) {
            run_warning(w, user);
        }
    }

    /// Take a message of `size` bytes that left `folder` out of the count
    /// (`sieve filter --apply` moved it): only where maildirsize is kept;
    /// an ignored folder was never counted.
    pub(super) fn quota_uncount(&self, user: &User, folder: &str, size: u64) {
        let rules = self.quota_rules(user);
        if !rules.counts(folder) || !user.maildir.join("maildirsize").exists() {
            return;
        }
        if let Err(e) = quota::add(&user.maildir, -(size as i64), -1) {
            tracing::warn!(user = %user.name, error = %e, "could not update maildirsize; it is recalculated later");
        }
    }
}

/// Starts a warning's command with `%u` `%n` `%d` `%h` expanded, as the
/// mailbox owner when the process may switch to it (root, or the
/// capabilities the system driver keeps); a thread reaps it.
fn run_warning(w: &QuotaWarning, user: &User) {
    use std::os::unix::process::CommandExt;
    let expand = |a: &String| {
        a.replace("%u", &user.name)
            .replace("%n", &user.local)
            .replace("%d", &user.domain)
            .replace("%h", &user.home.to_string_lossy())
    };
    let args: Vec<String> = w.command.iter().map(expand).collect();
    let mut cmd = std::process::Command::new(&args[0]);
    cmd.args(&args[1..])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    if let (Some(uid), Some(gid)) = (user.uid, user.gid) {
        if nix::unistd::geteuid().is_root() && uid != 0 {
            cmd.uid(uid).gid(gid);
        }
    }
    match cmd.spawn() {
        Ok(mut child) => {
            tracing::info!(user = %user.name, warning = %w.text, "quota warning");
            std::thread::spawn(move || child.wait());
        }
        Err(e) => {
            tracing::warn!(user = %user.name, warning = %w.text, error = %e, "quota warning: cannot run the command")
        }
    }
}
