//! Progress bars on stderr, only when stderr is a terminal and `--quiet` is
//! not given: JSON on stdout and logs in CI stay clean.

use std::io::IsTerminal;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

const DOWNLOAD: &str = "{spinner} {msg} {bytes}/{total_bytes} ({bytes_per_sec})";
const BYTES: &str = "{spinner} {msg} {bytes}/{total_bytes} ({bytes_per_sec}, {eta} left)";
const TASK: &str = "{spinner} {msg} {elapsed}";

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

    fn add(&self, bar: ProgressBar, template: &str, msg: &str) -> ProgressBar {
        let Some(bars) = &self.bars else { return ProgressBar::hidden() };
        let bar = bars.add(bar);
        bar.set_style(ProgressStyle::with_template(template).expect("valid template"));
        bar.set_message(msg.to_string());
        bar.enable_steady_tick(std::time::Duration::from_millis(120));
        bar
    }
}

#[cfg(test)]
mod tests {
    /// The bars only draw on a terminal: their templates are checked here.
    #[test]
    fn templates_parse() {
        for t in [super::DOWNLOAD, super::BYTES, super::TASK] {
            assert!(indicatif::ProgressStyle::with_template(t).is_ok(), "{t}");
        }
    }
}
