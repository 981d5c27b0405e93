//! `mailstow sieve check|test|filter`: compile scripts, show what a script
//! would do with a message (seen as a delivery would show it: after the
//! header fields the stored copy gets), and re-filter a stored folder. `check` and
//! `test` never deliver or send anything; `filter --apply` refiles through
//! the delivery's executor. Wires the Sieve host to the terminal.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use mailstow::deliver::headers::{self, Origin, Trace};
use mailstow::deliver::Folders;
use mailstow::users::User;

use super::common::{config_and_user, config_or_default, lookup};
use super::exit::{EX_CONFIG, EX_DATAERR, EX_NOINPUT, EX_OK, EX_TEMPFAIL, FOUND_PROBLEMS};
use mailstow_maildir::Maildir;
use mailstow_sieve::{Filter, Lookups, MessageEnvelope};

/// `sieve check FILE...`: exit 0 when all compile, 1 otherwise.
pub fn check(config: Option<&Path>, admin: bool, files: &[PathBuf]) -> u8 {
    let cfg = match config_or_default(config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("mailstow: {e}");
            return EX_CONFIG;
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
    if failed {
        FOUND_PROBLEMS
    } else {
        EX_OK
    }
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
    /// The header fields the script sees before MESSAGE, as a delivery
    /// adds them (Return-Path, Delivered-To, Received): built from -f, -t
    /// and the current time (the default), or with =FILE the fields in
    /// FILE.
    #[arg(
        long,
        value_name = "FILE",
        num_args = 0..=1,
        require_equals = true,
        conflicts_with = "no_delivery_headers"
    )]
    pub delivery_headers: Option<Option<PathBuf>>,
    /// Show the script MESSAGE exactly as it is, without the fields a
    /// delivery adds (as Dovecot's LDA runs a script).
    #[arg(long)]
    pub no_delivery_headers: bool,
    pub script: PathBuf,
    pub message: PathBuf,
}

/// `sieve test`: print the plan; exit 1 when SCRIPT does not compile.
pub fn test(a: TestArgs) -> u8 {
    let cfg = match config_or_default(a.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("mailstow: {e}");
            return EX_CONFIG;
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
            return FOUND_PROBLEMS;
        }
        Ok(None) => {
            eprintln!("mailstow: {}: no such file", a.script.display());
            return EX_NOINPUT;
        }
        Err(e) => {
            eprintln!("mailstow: {e}");
            return EX_TEMPFAIL;
        }
    }
    // As a delivery stores it and its script sees it: LF line ends.
    let message = match std::fs::read(&a.message) {
        Ok(m) => mailstow_maildir::to_lf(&m),
        Err(e) => {
            eprintln!("mailstow: {}: {e}", a.message.display());
            return EX_NOINPUT;
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
    )
    .with_readers(cfg.storage.keywords, cfg.storage.subscriptions);
    let mut seen = HashSet::new();
    // A dry run: every duplicate id is new, and is remembered only within
    // this run (as for the first delivery of the message).
    let mut duplicate = |id: &str| Ok(!seen.insert(id.to_owned()));
    let mut look = Lookups {
        duplicate: &mut duplicate,
        mailboxes: &Folders(&maildir),
    };
    let from = a.from.as_deref().filter(|f| !f.is_empty() && *f != "<>");
    let trace = match delivery_headers(&a, &cfg.hostname, from, &to) {
        Ok(t) => t,
        Err(code) => return code,
    };
    let env = MessageEnvelope {
        from,
        to: &to,
        orcpt: None,
    };
    let plan = match filter.run_with_trace(
        &user.account(),
        Some(&a.script),
        &env,
        &trace,
        &message,
        &mut look,
    ) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("mailstow: {e}");
            return EX_TEMPFAIL;
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
    EX_OK
}

/// The header fields the script sees before MESSAGE: none (the default,
/// and `--no-delivery-headers`), the ones a delivery would store the
/// message with (`--delivery-headers`: built as `mailstow deliver` builds
/// them, now), or those in a file (`--delivery-headers=FILE`).
fn delivery_headers(
    a: &TestArgs,
    hostname: &str,
    from: Option<&str>,
    to: &str,
) -> Result<Vec<u8>, u8> {
    let file = match &a.delivery_headers {
        None if a.no_delivery_headers => return Ok(Vec::new()),
        None | Some(None) => {
            let now = SystemTime::now();
            return Ok(headers::build(&Trace {
                return_path: from,
                delivered_to: Some(to),
                origin: &Origin::Local,
                hostname,
                id: &headers::new_id(now),
                received: now,
            }));
        }
        Some(Some(f)) => f,
    };
    let mut fields = match std::fs::read(file) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("mailstow: {}: {e}", file.display());
            return Err(EX_NOINPUT);
        }
    };
    fields.truncate(fields.trim_ascii_end().len());
    if memchr::memmem::find(&fields, b"\n\n").is_some()
        || memchr::memmem::find(&fields, b"\n\r\n").is_some()
    {
        eprintln!(
            "mailstow: {}: an empty line would end the header section there",
            file.display()
        );
        return Err(EX_DATAERR);
    }
    if !fields.is_empty() {
        fields.extend_from_slice(b"\n");
    }
    Ok(mailstow_maildir::to_lf(&fields))
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
            return EX_CONFIG;
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
            EX_OK
        }
        Err(e) => {
            eprintln!("mailstow: {e}");
            EX_TEMPFAIL
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
