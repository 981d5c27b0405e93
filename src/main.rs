//! mailstow's entry point: parse the command line, run the command, exit
//! with its code. Must not hold logic of its own.

mod cli;

use clap::Parser;

fn main() -> std::process::ExitCode {
    let code = match cli::Cli::parse().command {
        cli::Command::Serve { config } => cli::serve(config),
        cli::Command::Deliver {
            config,
            from,
            recipient,
            mailbox,
        } => cli::deliver(config, from, recipient, mailbox),
    };
    std::process::ExitCode::from(code)
}
