//! What the command line itself offers: shell completions and a man page,
//! both generated from the same definitions that parse the arguments.

use crate::util::*;

#[test]
fn completions_and_man_page_come_from_the_definitions() {
    let bash = run(&["completions", "bash"]);
    assert_eq!(bash.code, 0, "{}", bash.stderr);
    for word in
        ["_etcd__audit()", "complete -F _etcd__audit", "can-retire", "--encryption-config", "--live-mode"]
    {
        assert!(bash.stdout.contains(word), "bash completion lacks {word}");
    }
    let zsh = run(&["completions", "zsh"]);
    assert!(zsh.stdout.starts_with("#compdef etcd-audit"), "{}", &zsh.stdout[..80.min(zsh.stdout.len())]);
    let man = run(&["man"]);
    assert_eq!(man.code, 0, "{}", man.stderr);
    assert!(
        man.stdout.starts_with(".ie \\n(.g .ds Aq") || man.stdout.contains(".TH etcd-audit"),
        "{}",
        man.stdout
    );
    for word in ["scan", "inspect", "catalog", "configs"] {
        assert!(man.stdout.contains(word), "man page lacks {word}");
    }
    let unknown = run(&["completions", "tcsh"]);
    assert_eq!(unknown.code, 2);
    assert!(unknown.stderr.contains("invalid value 'tcsh'"), "{}", unknown.stderr);
}

/// On a terminal (a pseudo-terminal from util-linux `script`), auditing
/// shows a bar on stderr while stdout stays the report; `--quiet` hides it.
/// (What the bar counts is checked in `scan::the_meter_counts_keys`: frames
/// are drawn at most 20 times a second, so which ones appear here varies.)
#[test]
fn progress_shows_on_a_terminal_only() {
    let bin = env!("CARGO_BIN_EXE_etcd-audit");
    let cfg = testdata("scan/config-current.yaml");
    let db = testdata("etcd35-scan.snapshot.db");
    let command = format!("{bin} scan -c {} {}", path_str(&cfg), path_str(&db));
    let out = std::process::Command::new("script").args(["-qec", &command, "/dev/null"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(&format!("auditing {}", path_str(&db))), "{text}");
    assert!(text.contains("summary     plaintext 5"), "the report itself: {text}");
    let quiet = format!("{command} --quiet");
    let out = std::process::Command::new("script").args(["-qec", &quiet, "/dev/null"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!text.contains("auditing") && text.contains("summary     plaintext 5"), "--quiet: {text}");
}
