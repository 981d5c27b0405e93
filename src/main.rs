//! mailstow's entry point: parse the command line, run the command, exit
//! with its code. Must not hold logic of its own.

mod cli;
mod index_cli;
mod sieve_cli;

use clap::Parser;

fn main() -> std::process::ExitCode {
    let parsed = match cli::Cli::try_parse() {
        Ok(p) => p,
        Err(e) => {
            // --help and --version print and succeed; a usage error exits
            // EX_USAGE (64), which MTAs read as a permanent local problem.
            let _ = e.print();
            return std::process::ExitCode::from(if e.use_stderr() { 64 } else { 0 });
        }
    };
    let code = match parsed.command {
        cli::Command::Serve { config } => cli::serve(config),
        cli::Command::Config { command } => match command {
            cli::ConfigCommand::Check { config, quiet } => cli::config_check(config, quiet),
        },
        cli::Command::Deliver {
            config,
            from,
            recipient,
            mailbox,
        } => cli::deliver(config, from, recipient, mailbox),
        cli::Command::Index { command } => index_cli::run(command),
        cli::Command::Sieve { command } => match command {
            cli::SieveCommand::Filter {
                config,
                user,
                folder,
                apply,
            } => sieve_cli::filter(&config, &user, &folder, apply),
            cli::SieveCommand::Check {
                config,
                admin,
                files,
            } => sieve_cli::check(config.as_deref(), admin, &files),
            cli::SieveCommand::Test(args) => sieve_cli::test(args),
        },
    };
    std::process::ExitCode::from(code)
}
