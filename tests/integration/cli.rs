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
