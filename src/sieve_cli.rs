//! `mailstow sieve check|test`: compile scripts and show what a script
//! would do with a message. Must never deliver or send anything; it wires
//! the filter module to the terminal.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use mailstow::config::Config;
use mailstow::deliver::Folders;
use mailstow::users::{Directory, User};
use mailstow_maildir::Maildir;
use mailstow_sieve::{Filter, Lookups, MessageEnvelope};

/// A config for commands that can run without one.
pub(crate) fn config_or_default(path: Option<&Path>) -> Result<Arc<Config>, String> {
    match path {
        Some(p) => Config::load_without_tls(p)
            .map(Arc::new)
            .map_err(|e| e.to_string()),
        None => Config::from_toml(
            "[storage]\nmail_root = \"/nonexistent\"\n[users]\npasswd_file = \"/nonexistent\"\n",
            Path::new("(defaults)"),
            Path::new("/"),
        )
        .map(Arc::new)
        .map_err(|e| e.to_string()),
    }
}

/// `sieve check FILE...`: exit 0 when all compile, 1 otherwise.
pub fn check(config: Option<&Path>, admin: bool, files: &[PathBuf]) -> u8 {
    let cfg = match config_or_default(config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("mailstow: {e}");
            return 78;
        }
    };
    let filter = Filter::new(&cfg.sieve, &cfg.hostname);
    let mut failed = false;
    for f in files {
        match filter.check(f, admin) {
            Ok(Some(Ok(()))) => println!("{}: ok", f.display()),
            Ok(Some(Err(e))) => {
                failed = true;
                println!("{}:{}:{}: {}", f.display(), e.line, e.column, e.message);
            }
            Ok(None) => {
                failed = true;
                println!("{}: no such file", f.display());
            }
            Err(e) => {
                failed = true;
                println!("{}: {e}", f.display());
            }
        }
    }
    u8::from(failed)
}

#[derive(clap::Args)]
pub struct TestArgs {
    #[arg(long, short = 'c')]
    pub config: Option<PathBuf>,
    /// Look the user up in the configured users file.
    #[arg(long, short = 'u')]
    pub user: Option<String>,
    /// Envelope sender.
    #[arg(short = 'f', long = "from")]
    pub from: Option<String>,
    /// Envelope recipient.
    #[arg(short = 't', long = "to")]
    pub to: Option<String>,
    /// One JSON object instead of text.
    #[arg(long)]
    pub json: bool,
    /// Also print the tests and events the interpreter went through.
    #[arg(long)]
    pub trace: bool,
    pub script: PathBuf,
    pub message: PathBuf,
}

/// `sieve test`: print the plan; exit 1 when SCRIPT does not compile.
pub fn test(a: TestArgs) -> u8 {
    let cfg = match config_or_default(a.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("mailstow: {e}");
            return 78;
        }
    };
    let filter = Filter::new(&cfg.sieve, &cfg.hostname);
    match filter.check(&a.script, false) {
        Ok(Some(Ok(()))) => {}
        Ok(Some(Err(e))) => {
            eprintln!(
                "{}:{}:{}: {}",
                a.script.display(),
                e.line,
                e.column,
                e.message
            );
            return 1;
        }
        Ok(None) => {
            eprintln!("mailstow: {}: no such file", a.script.display());
            return 66;
        }
        Err(e) => {
            eprintln!("mailstow: {e}");
            return 75;
        }
    }
    let message = match std::fs::read(&a.message) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("mailstow: {}: {e}", a.message.display());
            return 66;
        }
    };
    let user = match &a.user {
        Some(u) => match lookup(&cfg, u) {
            Ok(user) => user,
            Err(code) => return code,
        },
        None => synthetic_user(
            a.to.as_deref().unwrap_or("recipient@example.org"),
            &a.script,
        ),
    };
    let to = a.to.clone().unwrap_or_else(|| user.name.clone());
    let maildir = Maildir::new(
        user.maildir.clone(),
        None,
        cfg.storage.folder_encoding,
        &cfg.hostname,
    );
    let mut seen = HashSet::new();
    // A dry run: every duplicate id is new, and is remembered only within
    // this run (as for the first delivery of the message).
    let mut duplicate = |id: &str| Ok(!seen.insert(id.to_owned()));
    let mut look = Lookups {
        duplicate: &mut duplicate,
        mailboxes: &Folders(&maildir),
    };
    let env = MessageEnvelope {
        from: a.from.as_deref().filter(|f| !f.is_empty() && *f != "<>"),
        to: &to,
        orcpt: None,
    };
    let plan = match filter.run(&user.account(), Some(&a.script), &env, &message, &mut look) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("mailstow: {e}");
            return 75;
        }
    };
    if a.json {
        let mut j = plan.to_json();
        if a.trace {
            j["trace"] = plan.trace.clone().into();
        }
        println!("{j}");
    } else {
        if a.trace {
            for t in &plan.trace {
                println!("trace: {t}");
            }
        }
        print!("{}", plan.to_text());
    }
    0
}

/// `sieve filter`: exit 0 when every message was handled.
pub fn filter(config: &Path, address: &str, folder: &str, apply: bool) -> u8 {
    let (cfg, user) = match config_and_user(config, address) {
        Ok(found) => found,
        Err(code) => return code,
    };
    let d = match mailstow::deliver::Deliverer::new(cfg) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("mailstow: {e}");
            return 78;
        }
    };
    match mailstow::deliver::refilter::refilter(&d, &user, folder, apply) {
        Ok(done) => {
            for r in &done {
                println!("{}", mailstow::deliver::refilter::describe(r));
            }
            if !apply {
                println!(
                    "({} messages; dry run: add --apply to move them)",
                    done.len()
                );
            }
            0
        }
        Err(e) => {
            eprintln!("mailstow: {e}");
            75
        }
    }
}

/// Loads the config and looks the user up; the error is an exit code
/// (78 configuration, 67 unknown user, 75 temporary).
pub(crate) fn config_and_user(config: &Path, address: &str) -> Result<(Arc<Config>, User), u8> {
    let cfg = config_or_default(Some(config)).map_err(|e| {
        eprintln!("mailstow: {e}");
        78
    })?;
    let user = lookup(&cfg, address)?;
    Ok((cfg, user))
}

/// Look a user up in the configured users file; the error is an exit code.
pub(crate) fn lookup(cfg: &Config, address: &str) -> Result<User, u8> {
    let dir = Directory::open(&cfg.users, &cfg.storage.mail_root).map_err(|e| {
        eprintln!("mailstow: {e}");
        78
    })?;
    let (local, domain) = address.rsplit_once('@').unwrap_or((address, ""));
    match dir.lookup(local, domain) {
        Ok(Some(user)) => Ok(user),
        Ok(None) => {
            eprintln!("mailstow: {address}: user unknown");
            Err(67)
        }
        Err(e) => {
            eprintln!("mailstow: {e}");
            Err(75)
        }
    }
}

/// A user for trying a script without a users file: the recipient address,
/// with the script's directory as home.
fn synthetic_user(address: &str, script: &Path) -> User {
    let (local, domain) = address.rsplit_once('@').unwrap_or((address, ""));
    let home = script
        .parent()
        .map(Path::to_owned)
        .unwrap_or_else(|| PathBuf::from("."));
    User {
        name: address.to_owned(),
        local: local.to_owned(),
        domain: domain.to_ascii_lowercase(),
        detail: None,
        uid: None,
        gid: None,
        maildir: home.join("Maildir"),
        home,
        extra: Vec::new(),
    }
}
