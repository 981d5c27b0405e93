//! `mailstow index ...`: rebuild, verify, list, search and stats over a
//! user's mailbox index, each after a reconcile so nothing stale is shown.
//! Must not hold index logic (the mailstow-index crate does) and must not
//! deliver.
//! Exit codes: 0 done, 1 verify found differences, 67 unknown user,
//! 75 temporary failure (I/O, lock), 78 configuration.

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};

use mailstow::config::Config;
use mailstow::users::{Directory, User};
use mailstow_index::{Index, MessageRow, Search};
use mailstow_proto::date::{iso_datetime, parse_iso_date};

use super::common::{config_and_user, config_or_default, lookup, DEFAULT_CONFIG};
use super::exit::{EX_CONFIG, EX_OK, EX_TEMPFAIL, EX_USAGE, FOUND_PROBLEMS};

#[derive(Subcommand)]
pub enum IndexCommand {
    /// Re-read the whole Maildir into the index, keeping the UIDs it can
    /// prove (rows still matching a file, or dovecot-uidlist); an unreadable
    /// index file is moved aside first.
    Rebuild(UserArgs),
    /// Compare the index with a fresh reading of the Maildir; print each
    /// difference and exit 1 if there is any.
    Verify(UserArgs),
    /// List the messages of one folder (IMAP name) or of all.
    List {
        #[command(flatten)]
        user: UserArgs,
        folder: Option<String>,
        /// One JSON array, one object per message.
        #[arg(long)]
        json: bool,
    },
    /// Find messages; every criterion given must match.
    Search(Box<SearchArgs>),
    /// Reconcile the index with the Maildir (what every other command does
    /// first), for one user or, without USER, for every user of the
    /// passwd-file: for cron, so programs reading the database see changes
    /// an IMAP server made.
    Sync {
        #[arg(long, short = 'c', default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        user: Option<String>,
    },
    /// Per-folder counts, sizes, UIDVALIDITY, UIDNEXT, HIGHESTMODSEQ; for
    /// one user or, without USER, for every user of the passwd-file.
    Stats {
        #[arg(long, short = 'c', default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        user: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args)]
pub struct UserArgs {
    #[arg(long, short = 'c', default_value = DEFAULT_CONFIG)]
    config: PathBuf,
    /// The user's full address.
    user: String,
}

#[derive(Args)]
pub struct SearchArgs {
    #[command(flatten)]
    user: UserArgs,
    /// Only this folder (IMAP name).
    #[arg(long)]
    folder: Option<String>,
    /// Words or a phrase in From (full-text, whole words).
    #[arg(long)]
    from: Option<String>,
    #[arg(long)]
    to: Option<String>,
    #[arg(long)]
    subject: Option<String>,
    /// INTERNALDATE on or after this day (YYYY-MM-DD, UTC).
    #[arg(long)]
    since: Option<String>,
    /// INTERNALDATE before this day (YYYY-MM-DD, UTC).
    #[arg(long)]
    before: Option<String>,
    /// A flag the message has: \Seen, \Answered, \Flagged, \Deleted,
    /// \Draft or a keyword. Repeatable.
    #[arg(long = "flag")]
    flags: Vec<String>,
    /// A flag the message does not have. Repeatable.
    #[arg(long = "no-flag")]
    no_flags: Vec<String>,
    #[arg(long)]
    message_id: Option<String>,
    #[arg(long)]
    limit: Option<u64>,
    #[arg(long)]
    json: bool,
}

pub fn run(cmd: IndexCommand) -> u8 {
    match cmd {
        IndexCommand::Rebuild(u) => with_index(&u.config, &u.user, true, |ix| {
            let ch = ix.resync_all().map_err(fail)?;
            println!(
                "{}: {} added, {} updated, {} expunged; folders {} added, {} removed, {} renamed",
                ix.path().display(),
                ch.added,
                ch.updated,
                ch.expunged,
                ch.folders_added,
                ch.folders_removed,
                ch.folders_renamed
            );
            Ok(EX_OK)
        }),
        IndexCommand::Verify(u) => with_index(&u.config, &u.user, false, |ix| {
            let diffs = ix.verify().map_err(fail)?;
            for d in &diffs {
                println!("{d}");
            }
            if diffs.is_empty() {
                println!("{}: matches the Maildir", ix.path().display());
                Ok(EX_OK)
            } else {
                Ok(FOUND_PROBLEMS)
            }
        }),
        IndexCommand::List { user, folder, json } => {
            with_index(&user.config, &user.user, false, |ix| {
                ix.reconcile().map_err(fail)?;
                let rows = ix.list(folder.as_deref()).map_err(fail)?;
                print_rows(&rows, json)
            })
        }
        IndexCommand::Search(a) => {
            let a = *a;
            let mut q = Search {
                folder: a.folder,
                from: a.from,
                to: a.to,
                subject: a.subject,
                flagged: a.flags,
                unflagged: a.no_flags,
                message_id: a.message_id,
                limit: a.limit,
                ..Search::default()
            };
            for (arg, name, slot) in [
                (&a.since, "--since", &mut q.since),
                (&a.before, "--before", &mut q.before),
            ] {
                if let Some(s) = arg {
                    match parse_iso_date(s) {
                        Some(t) => *slot = Some(t),
                        None => {
                            eprintln!("mailstow: {name} {s:?}: expected YYYY-MM-DD");
                            return EX_USAGE;
                        }
                    }
                }
            }
            with_index(&a.user.config, &a.user.user, false, |ix| {
                ix.reconcile().map_err(fail)?;
                let rows = ix.search(&q).map_err(fail)?;
                print_rows(&rows, a.json)
            })
        }
        IndexCommand::Stats { config, user, json } => stats(&config, user.as_deref(), json),
        IndexCommand::Sync { config, user } => {
            let r = each_user(&config, user.as_deref(), |ix| ix.reconcile().map_err(fail));
            match r {
                Ok(done) => {
                    for (name, ch) in done {
                        println!(
                            "{name}: {} added, {} updated, {} expunged; folders {} added, {} removed, {} renamed",
                            ch.added,
                            ch.updated,
                            ch.expunged,
                            ch.folders_added,
                            ch.folders_removed,
                            ch.folders_renamed
                        );
                    }
                    EX_OK
                }
                Err(code) => code,
            }
        }
    }
}

/// Runs `f` on the index of one user, or of every user of the passwd-file
/// who has a Maildir; the results by user name, or the first exit code.
fn each_user<T>(
    config: &Path,
    user: Option<&str>,
    f: impl Fn(&Index) -> Result<T, u8>,
) -> Result<Vec<(String, T)>, u8> {
    let cfg = config_or_default(Some(config)).map_err(|e| {
        eprintln!("mailstow: {e}");
        EX_CONFIG
    })?;
    let users = match user {
        Some(address) => vec![lookup(&cfg, address)?],
        None => Directory::open(&cfg.users, &cfg.storage.mail_root)
            .map_err(|e| {
                eprintln!("mailstow: {e}");
                EX_CONFIG
            })?
            .users(),
    };
    let mut all = Vec::new();
    for u in &users {
        if user.is_none() && !u.maildir.is_dir() {
            continue;
        }
        let ix = open(&cfg, u, false)?;
        all.push((u.name.clone(), f(&ix)?));
    }
    Ok(all)
}

fn stats(config: &Path, user: Option<&str>, json: bool) -> u8 {
    let all = match each_user(config, user, |ix| {
        ix.reconcile().map_err(fail)?;
        ix.stats().map_err(fail)
    }) {
        Ok(a) => a,
        Err(code) => return code,
    };
    if json {
        let v: Vec<serde_json::Value> = all
            .iter()
            .map(|(name, f)| serde_json::json!({ "user": name, "folders": f }))
            .collect();
        println!("{}", serde_json::Value::Array(v));
        return EX_OK;
    }
    println!("user\tfolder\tmessages\tunseen\tbytes\tuidvalidity\tuidnext\thighestmodseq");
    for (name, folders) in &all {
        for f in folders {
            println!(
                "{name}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
                f.folder, f.messages, f.unseen, f.size, f.uidvalidity, f.uidnext, f.highestmodseq
            );
        }
    }
    EX_OK
}

fn print_rows(rows: &[MessageRow], json: bool) -> Result<u8, u8> {
    if json {
        match serde_json::to_string(rows) {
            Ok(s) => println!("{s}"),
            Err(e) => {
                eprintln!("mailstow: {e}");
                return Err(EX_TEMPFAIL);
            }
        }
        return Ok(EX_OK);
    }
    for r in rows {
        println!(
            "{}\t{}\t{}\t{}\t{}\t{}\t{}",
            r.folder,
            r.uid,
            if r.flags.is_empty() {
                "-".to_owned()
            } else {
                r.flags.join(" ")
            },
            r.vsize,
            iso_datetime(r.internal_date),
            r.from.as_deref().unwrap_or(""),
            r.subject.as_deref().unwrap_or("")
        );
    }
    Ok(EX_OK)
}

/// Loads the config, finds the user, opens the index and runs `f`.
fn with_index(
    config: &Path,
    address: &str,
    rebuild: bool,
    f: impl FnOnce(&Index) -> Result<u8, u8>,
) -> u8 {
    let (cfg, user) = match config_and_user(config, address) {
        Ok(found) => found,
        Err(code) => return code,
    };
    match open(&cfg, &user, rebuild).and_then(|ix| f(&ix)) {
        Ok(code) | Err(code) => code,
    }
}

fn open(cfg: &Config, user: &User, rebuild: bool) -> Result<Index, u8> {
    let maildir = mailstow::deliver::pipeline::maildir_of(cfg, user);
    if !user.home.is_dir() {
        if let Err(e) = maildir.create() {
            eprintln!("mailstow: {e}");
            return Err(EX_TEMPFAIL);
        }
    }
    match Index::open(maildir.clone(), &user.home, &cfg.index) {
        Ok(ix) => Ok(ix),
        Err(e) if rebuild => {
            // An index that cannot be opened is set aside and built anew.
            let path = user
                .home
                .join(mailstow_index::INDEX_DIR)
                .join(mailstow_index::INDEX_FILE);
            let aside = path.with_extension(format!(
                "sqlite.broken-{}",
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or(0)
            ));
            eprintln!(
                "mailstow: {e}; moving it to {} and rebuilding",
                aside.display()
            );
            for suffix in ["", "-wal", "-shm"] {
                let from = PathBuf::from(format!("{}{suffix}", path.display()));
                let to = PathBuf::from(format!("{}{suffix}", aside.display()));
                if from.exists() {
                    if let Err(e) = std::fs::rename(&from, &to) {
                        eprintln!("mailstow: rename {}: {e}", from.display());
                        return Err(EX_TEMPFAIL);
                    }
                }
            }
            Index::open(maildir, &user.home, &cfg.index).map_err(fail)
        }
        Err(e) => Err(fail(e)),
    }
}

fn fail(e: mailstow_index::IndexError) -> u8 {
    eprintln!("mailstow: {e}");
    EX_TEMPFAIL
}
