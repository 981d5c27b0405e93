//! mailstow's entry point: parse the command line, run the command, exit
//! with its code. Must not hold logic of its own.

mod cli;

use clap::Parser;

fn main() -> std::process::ExitCode {
    let code = match cli::Cli::try_parse() {
        Ok(parsed) => cli::run(parsed),
        Err(e) => {
            // --help and --version print and succeed; a usage error exits
            // EX_USAGE, which MTAs read as a permanent local problem.
            let _ = e.print();
            if e.use_stderr() {
                cli::EX_USAGE
            } else {
                0
            }
        }
    };
    std::process::ExitCode::from(code)
}
