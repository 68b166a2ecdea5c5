//! Progress bars on stderr, only when stderr is a terminal and `--quiet` is
//! not given: JSON on stdout and logs in CI stay clean.

use std::io::IsTerminal;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

const DOWNLOAD: &str = "{spinner} {msg} {bytes}/{total_bytes} ({bytes_per_sec})";
const BYTES: &str = "{spinner} {msg} {bytes}/{total_bytes} ({bytes_per_sec}, {eta} left)";
const TASK: &str = "{spinner} {msg} {elapsed}";
const STAGE: &str = "{spinner} {msg} {human_pos}/{human_len} {prefix} ({rate}, {eta} left)";

#[derive(Clone)]
pub struct Progress {
    bars: Option<MultiProgress>,
}

impl Progress {
    pub fn new(quiet: bool) -> Self {
        let on = !quiet && std::io::stderr().is_terminal();
        Progress { bars: on.then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr())) }
    }

    /// A byte counter for a download of `size` bytes.
    pub fn download(&self, name: &str, size: u64) -> ProgressBar {
        self.add(ProgressBar::new(size), DOWNLOAD, name)
    }

    /// Bytes of a known total read so far, with throughput and time left
    /// (unpacking: the compressed input of each layer).
    pub fn bytes(&self, what: &str, name: &str, total: u64) -> ProgressBar {
        self.add(ProgressBar::new(total), BYTES, &format!("{what} {name}"))
    }

    /// A spinner for work of unknown length (auditing).
    pub fn task(&self, what: &str, name: &str) -> ProgressBar {
        self.add(ProgressBar::new_spinner(), TASK, &format!("{what} {name}"))
    }

    /// A meter for auditing one backup: a spinner until the audit says
    /// what it counts ([`Meter::stage`]).
    pub fn meter(&self, what: &str, name: &str) -> Meter {
        Meter(self.task(what, name))
    }

    fn add(&self, bar: ProgressBar, template: &str, msg: &str) -> ProgressBar {
        let Some(bars) = &self.bars else { return ProgressBar::hidden() };
        let bar = bars.add(bar);
        bar.set_style(ProgressStyle::with_template(template).expect("valid template"));
        bar.set_message(msg.to_string());
        bar.enable_steady_tick(std::time::Duration::from_millis(120));
        bar
    }
}

/// Counts per second without decimals (indicatif's `{per_sec}` has four).
fn stage_style() -> ProgressStyle {
    ProgressStyle::with_template(STAGE).expect("valid template").with_key(
        "rate",
        |state: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
            let _ = write!(w, "{:.0}/s", state.per_sec());
        },
    )
}

/// How far one audit is: leaf pages read, then entries judged, each with
/// throughput and time left. Hidden (and free) when there are no bars.
#[derive(Clone, Debug)]
pub struct Meter(ProgressBar);

impl Default for Meter {
    fn default() -> Self {
        Meter(ProgressBar::hidden())
    }
}

impl Meter {
    /// Starts counting `total` units (`"leaf pages"`, `"entries"`).
    pub fn stage(&self, units: &'static str, total: u64) {
        self.0.set_position(0);
        self.0.set_prefix(units);
        self.0.set_length(total);
        self.0.reset_eta();
        self.0.set_style(stage_style());
    }

    pub fn advance(&self, n: u64) {
        self.0.inc(n);
    }

    pub fn finish(&self) {
        self.0.finish_and_clear();
    }

    /// The stage counted last: its units, how far, and of how many.
    pub fn counted(&self) -> (String, u64, Option<u64>) {
        (self.0.prefix().to_string(), self.0.position(), self.0.length())
    }
}

#[cfg(test)]
mod tests {
    /// The bars only draw on a terminal: their templates are checked here.
    #[test]
    fn templates_parse() {
        for t in [super::DOWNLOAD, super::BYTES, super::TASK, super::STAGE] {
            assert!(indicatif::ProgressStyle::with_template(t).is_ok(), "{t}");
        }
    }
}
