//! The command line (clap): the commands and their arguments, and which
//! function runs each. Must not hold delivery or protocol logic; each
//! command's module wires the library together and maps its errors to an
//! exit code (sysexits, [`exit`]).
//!
//! - [`common`]: the default config path, loading it, looking a user up.
//! - [`serve`]: `serve`, the network service.
//! - [`deliver`]: `deliver`, pipe mode.
//! - [`config`]: `config check`, `config from-dovecot`.
//! - [`index`]: `index rebuild|verify|list|search|sync|stats`.
//! - [`sieve`]: `sieve check|test|filter`.

mod common;
mod config;
mod deliver;
mod exit;
mod index;
mod serve;
mod sieve;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use common::DEFAULT_CONFIG;
pub use exit::EX_USAGE;

#[derive(Parser)]
#[command(
    name = "mailstow",
    version,
    about = "Final-hop mail delivery agent: LMTP or pipe in, durable Maildir++ out"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Sieve tools: check scripts, see what a script does with a message.
    Sieve {
        #[command(subcommand)]
        command: SieveCommand,
    },
    /// The per-mailbox index: rebuild, verify, list, search, stats.
    Index {
        #[command(subcommand)]
        command: index::IndexCommand,
    },
    /// The configuration file: check it against the system.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Run the LMTP (and SMTP) service in the foreground.
    Serve {
        #[arg(long, short = 'c', default_value = DEFAULT_CONFIG)]
        config: PathBuf,
    },
    /// Deliver one message read on stdin (for Postfix pipe(8) or
    /// mailbox_command), taking dovecot-lda's flags. Exit codes: 0
    /// delivered, 67 unknown user, 75 temporary failure, 77 rejected by
    /// the user's Sieve script (with -e), 65 bad data, 64 usage, 78
    /// configuration.
    Deliver(DeliverArgs),
}

/// `mailstow deliver`'s arguments: dovecot-lda's, with its meanings.
#[derive(clap::Args)]
pub struct DeliverArgs {
    #[arg(long, short = 'c', default_value = DEFAULT_CONFIG)]
    pub config: PathBuf,
    /// Envelope sender ("" or "<>" for the null sender). Without it:
    /// the address of a Return-Path field at the top of the message
    /// (which is dropped: the stored copy gets ours), else $SENDER,
    /// else the null sender.
    #[arg(short = 'f', long = "from")]
    pub from: Option<String>,
    /// The user to deliver to (user@domain), looked up in the users
    /// directory; without it, the name of the account that runs the
    /// command (as dovecot-lda: Postfix's mailbox_command and procmail
    /// run it as the recipient).
    #[arg(short = 'd', long = "recipient")]
    pub recipient: Option<String>,
    /// The final recipient address (Sieve's envelope "to", vacation's
    /// "addressed to me", Delivered-To); default: -a, else the user
    /// (`user@hostname` for a name without a domain), as dovecot-lda.
    #[arg(short = 'r', long = "final-recipient")]
    pub final_recipient: Option<String>,
    /// The original recipient address (ORCPT), and the final one when -r
    /// is not given; default: the header
    /// `[delivery] original_recipient_header` names, else none.
    #[arg(short = 'a', long = "original-recipient")]
    pub original_recipient: Option<String>,
    /// Folder to save into (IMAP name, '.' separated), created if missing.
    #[arg(short = 'm', long = "mailbox")]
    pub mailbox: Option<String>,
    /// Read the message from PATH instead of stdin.
    #[arg(short = 'p', long = "path")]
    pub path: Option<PathBuf>,
    /// A Sieve reject exits 77 with the reason on stderr, for the MTA to
    /// bounce; without it, a rejection is mailed to the sender (an MDN,
    /// from postmaster_address) and the exit is 0, as dovecot-lda does.
    #[arg(short = 'e')]
    pub reject_by_exit: bool,
    /// Accepted as dovecot-lda's "keep the environment": mailstow never
    /// clears it.
    #[arg(short = 'k')]
    pub keep_environment: bool,
    /// Set one configuration key over the file's: -o section.key=value
    /// (the value as TOML when it is one, else a string); repeatable.
    #[arg(short = 'o', value_name = "KEY=VALUE")]
    pub overrides: Vec<String>,
}

#[derive(Subcommand)]
pub enum ConfigCommand {
    /// Validate everything the configuration needs (directories writable
    /// by the configured user, the passwd-file, Sieve scripts, listener
    /// paths) and print the effective configuration, defaults included.
    /// Problems go to stderr as `[key]: reason`; exit 78 when any is an
    /// error, 0 otherwise.
    Check {
        #[arg(long, short = 'c', default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        /// Print only the findings, not the configuration.
        #[arg(long, short = 'q')]
        quiet: bool,
    },
    /// Write the mailstow configuration equivalent to a Dovecot one, read
    /// from the output of `doveconf -n`. Every Dovecot setting that cannot
    /// be carried over is named on stderr with the reason; settings that
    /// do not matter to delivery are named once. Exit 0 when written, 65
    /// when the input is not doveconf's format, 69 when doveconf cannot
    /// run, 73 when the output cannot be written.
    FromDovecot {
        /// A file holding `doveconf -n` output; without it, `doveconf -n`
        /// is run.
        #[arg(long, short = 'i')]
        input: Option<PathBuf>,
        /// Where to write the configuration; without it, stdout.
        #[arg(long, short = 'o')]
        output: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
pub enum SieveCommand {
    /// Compile scripts; errors as file:line:col: message; exit 1 on error.
    Check {
        #[arg(long, short = 'c')]
        config: Option<PathBuf>,
        /// Check as an admin script (before/after/global: editheader allowed).
        #[arg(long)]
        admin: bool,
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Print what SCRIPT does with MESSAGE (folders and flags, discard,
    /// reject, redirects, vacation replies). Never delivers or sends.
    Test(sieve::TestArgs),
    /// Run a user's script over the messages already in FOLDER (as
    /// Pigeonhole's sieve-filter). Reports only, unless --apply: then each
    /// message is copied where its plan files it and leaves FOLDER when the
    /// plan does not keep it there. Never sends and never deletes a
    /// discarded message.
    Filter {
        #[arg(long, short = 'c', default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        #[arg(long, short = 'u')]
        user: String,
        folder: String,
        #[arg(long)]
        apply: bool,
    },
}

/// Run the command; its exit code.
pub fn run(cli: Cli) -> u8 {
    match cli.command {
        Command::Serve { config } => serve::serve(config),
        Command::Config {
            command: ConfigCommand::Check { config, quiet },
        } => config::check(config, quiet),
        Command::Config {
            command: ConfigCommand::FromDovecot { input, output },
        } => config::from_dovecot(input.as_deref(), output.as_deref()),
        Command::Deliver(args) => deliver::deliver(args),
        Command::Index { command } => index::run(command),
        Command::Sieve { command } => match command {
            SieveCommand::Filter {
                config,
                user,
                folder,
                apply,
            } => sieve::filter(&config, &user, &folder, apply),
            SieveCommand::Check {
                config,
                admin,
                files,
            } => sieve::check(config.as_deref(), admin, &files),
            SieveCommand::Test(args) => sieve::test(args),
        },
    }
}
