//! The `etcd-audit` command line: parse and validate arguments, run one
//! command, exit with its outcome.

mod cli;

use std::io::{BufWriter, Write};
use std::process::ExitCode;

use clap::{CommandFactory, Parser};
use cli::{Cli, Command};
use etcd_audit::audit::Outcome;
use etcd_audit::report::output::FileOutput;
use etcd_audit::run::{self, RunError};

fn main() -> ExitCode {
    harden();
    on_interrupt_clean_up();
    let Cli { command, out: to_file } = Cli::parse();
    let mut out = match Output::open(to_file.as_deref()) {
        Ok(out) => out,
        Err(e) => return ExitCode::from(fail(&e) as u8),
    };
    let result: Result<Outcome, RunError> = match command {
        Command::Inspect { sources, format, reading } => match reading.into_args(sources) {
            Ok(args) => run::inspect(&mut out, &args, format.into()),
            Err(e) => return ExitCode::from(fail(&e) as u8),
        },
        Command::Scan(cli) => match cli.into_args() {
            Ok(args) => run::scan(&mut out, &args),
            Err(e) => return ExitCode::from(fail(&e) as u8),
        },
        Command::Exposure(cli) => match cli.into_args() {
            Ok(args) => run::exposure(&mut out, &args),
            Err(e) => return ExitCode::from(fail(&e) as u8),
        },
        Command::Keys(cli) => match cli.into_keys_args() {
            Ok(args) => run::keys(&mut out, &args),
            Err(e) => return ExitCode::from(fail(&e) as u8),
        },
        Command::Configs { configs, format, known } => match known.load() {
            Ok(known) => run::configs(&mut out, &configs, known, format.into()),
            Err(e) => return ExitCode::from(fail(&e) as u8),
        },
        Command::Catalog { catalog, format, query } => {
            run::catalog(&mut out, catalog, query.into(), format.into())
        }
        Command::Schema { name } => {
            out.write_all(name.text().as_bytes()).map(|_| Outcome::Clean).map_err(RunError::from)
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
    etcd_audit::source::scratch::cleanup();
    let outcome = match result {
        Ok(outcome) => match out.finish() {
            // A reader that stopped reading (`| head`) gets the audit's exit code, quietly.
            Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => fail(&RunError::Output(e)),
            _ => outcome,
        },
        Err(e) => fail(&e),
    };
    ExitCode::from(outcome as u8)
}

/// Where the report goes: stdout, or `-o FILE` (renamed into place when the
/// command has written it; left untouched when the command could not run).
enum Output {
    Stdout(BufWriter<std::io::StdoutLock<'static>>),
    File(FileOutput),
}

impl Output {
    fn open(path: Option<&std::path::Path>) -> Result<Output, RunError> {
        match path {
            None => Ok(Output::Stdout(BufWriter::new(std::io::stdout().lock()))),
            Some(path) => FileOutput::create(path)
                .map(Output::File)
                .map_err(|source| RunError::File { path: path.to_path_buf(), source }),
        }
    }

    fn finish(self) -> std::io::Result<()> {
        match self {
            Output::Stdout(mut out) => out.flush(),
            Output::File(file) => file.commit(),
        }
    }
}

impl Write for Output {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Output::Stdout(out) => out.write(buf),
            Output::File(out) => out.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Output::Stdout(out) => out.flush(),
            Output::File(out) => out.flush(),
        }
    }
}

/// Keys and decrypted values live in this process's memory: a crash must
/// not write them to a core file, and other users' processes must not read
/// them through /proc. (root, or anyone with CAP_SYS_PTRACE, still can.)
fn harden() {
    #[cfg(target_os = "linux")]
    // SAFETY: prctl(PR_SET_DUMPABLE, 0) only changes this process's flags.
    unsafe {
        libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0);
    }
}

/// SIGINT or SIGTERM: remove every scratch file and folder of this run (they
/// hold copies of backups), say so in one line, and exit 130 or 143 at once.
/// Whatever was written to stdout stays a truncated document under that code.
/// Folders left by runs that were killed outright are removed on start.
/// The line is written without `eprintln!`: when stderr is a closed pipe
/// (the reader died first), that would panic this thread and the process
/// would never exit.
fn on_interrupt_clean_up() {
    use signal_hook::consts::{SIGINT, SIGTERM};
    etcd_audit::source::scratch::remove_stale(&std::env::temp_dir());
    let Ok(mut signals) = signal_hook::iterator::Signals::new([SIGINT, SIGTERM]) else { return };
    std::thread::spawn(move || {
        if let Some(signal) = signals.forever().next() {
            etcd_audit::source::scratch::cleanup();
            let name = if signal == SIGINT { "SIGINT" } else { "SIGTERM" };
            let line = format!("etcd-audit: interrupted by {name}; temporary files removed\n");
            // SAFETY: one write(2) of a buffer this thread owns, to fd 2
            // (no lock another thread could hold), then _exit: it ends the
            // process without running anything more (std::process::exit would
            // first flush stdout, waiting for its lock if a report is being
            // written).
            unsafe {
                libc::write(2, line.as_ptr().cast(), line.len());
                libc::_exit(128 + signal);
            }
        }
    });
}

/// One line on stderr with the error and its causes.
fn fail(e: &(dyn std::error::Error + 'static)) -> Outcome {
    eprintln!("etcd-audit: {}", etcd_audit::error_chain(e));
    Outcome::Failed
}

#[cfg(test)]
mod tests {
    #[cfg(target_os = "linux")]
    #[test]
    fn the_process_leaves_no_core_dump() {
        super::harden();
        // SAFETY: reads this process's dumpable flag.
        assert_eq!(unsafe { libc::prctl(libc::PR_GET_DUMPABLE, 0, 0, 0, 0) }, 0);
    }
}
