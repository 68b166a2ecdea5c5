//! The `etcd-audit` command line: parse and validate arguments, run one
//! command, exit with its outcome.

mod cli;

use std::io::{BufWriter, Write};
use std::process::ExitCode;

use clap::{CommandFactory, Parser};
use cli::{Cli, Command};
use etcd_audit::audit::Outcome;
use etcd_audit::run::{self, RunError};

fn main() -> ExitCode {
    let command = Cli::parse().command;
    let stdout = std::io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    let result: Result<Outcome, RunError> = match command {
        Command::Inspect { sources, format, reading } => {
            run::inspect(&mut out, &reading.into_args(sources), format.into())
        }
        Command::Scan(cli) => cli.into_args().map_err(RunError::from).and_then(|a| run::scan(&mut out, &a)),
        Command::Keys(cli) => cli.into_args().map_err(RunError::from).and_then(|a| run::keys(&mut out, &a)),
        Command::Configs { configs, format } => run::configs(&mut out, &configs, format.into()),
        Command::Catalog { catalog, format, query } => {
            run::catalog(&mut out, catalog, query.into(), format.into())
        }
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "etcd-audit", &mut out);
            Ok(Outcome::Clean)
        }
        Command::Man => clap_mangen::Man::new(Cli::command())
            .render(&mut out)
            .map(|_| Outcome::Clean)
            .map_err(RunError::from),
    };
    let outcome = match result {
        Ok(outcome) => match out.flush() {
            // A reader that stopped reading (`| head`) gets the audit's exit code, quietly.
            Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => fail(&RunError::Output(e)),
            _ => outcome,
        },
        Err(e) => fail(&e),
    };
    ExitCode::from(outcome as u8)
}

/// One line on stderr with the error and its causes.
fn fail(e: &RunError) -> Outcome {
    eprintln!("etcd-audit: {}", etcd_audit::error_chain(e));
    Outcome::Failed
}
