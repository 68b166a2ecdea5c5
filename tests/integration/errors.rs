//! Every way a command exits 2 says why, in one line naming the path and
//! the reason (and in the JSON `error`); a reader that stops reading ends
//! the run quietly with the audit's own exit code.

use std::io::Read;
use std::process::{Command, Stdio};

use crate::util::*;

/// Exit 2, one stderr line naming `what`, and the JSON `error` saying the same.
fn assert_fails_with(source: &str, reason: &str) {
    let r = run(&["scan", "--format", "json", source]);
    assert_eq!(r.code, 2, "{source}: {}", r.stderr);
    let line = format!("etcd-audit: {source}: ");
    assert!(r.stderr.lines().any(|l| l.starts_with(&line) && l.contains(reason)), "{source}: {}", r.stderr);
    let error = r.json()["backups"][0]["error"].as_str().unwrap().to_string();
    assert!(error.contains(reason), "{error}");
    let table = run(&["scan", source]);
    assert_eq!(table.code, 2);
    assert!(table.stdout.contains("CANNOT AUDIT"), "{}", table.stdout);
}

#[test]
fn an_empty_folder_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let name = path_str(dir.path());
    assert_fails_with(name, &format!("no backups found in {name} (0 files)"));
    std::fs::write(dir.path().join("notes.txt"), "not a backup").unwrap();
    assert_fails_with(name, "(1 files, none a backup)");
}

#[test]
fn special_files_are_refused_without_reading() {
    assert_fails_with("/dev/zero", "not a regular file or directory (a character device)");
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo");
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    assert_fails_with(path_str(&fifo), "not a regular file or directory (a FIFO)");
}

#[test]
fn a_symlink_loop_and_a_missing_path_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a");
    std::os::unix::fs::symlink(dir.path().join("b"), &a).unwrap();
    std::os::unix::fs::symlink(&a, dir.path().join("b")).unwrap();
    assert_fails_with(path_str(&a), "Too many levels of symbolic links");
    assert_fails_with(path_str(&dir.path().join("missing.db")), "No such file or directory");
}

#[test]
fn a_file_that_is_no_backup_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let notes = dir.path().join("notes.txt");
    std::fs::write(&notes, "hello").unwrap();
    assert_fails_with(path_str(&notes), "not a recognized backup");
}

#[test]
fn catalog_queries_never_create_a_catalog() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("sub/typo.redb");
    for query in [&["list"][..], &["can-retire", "aescbc:key1"], &["needs", "x.db"], &["forget", "x.db"]] {
        let mut args = vec!["catalog"];
        args.extend_from_slice(query);
        args.extend(["--catalog", path_str(&missing)]);
        let r = run(&args);
        assert_eq!(r.code, 2, "{query:?}: {}", r.stderr);
        assert_eq!(r.stderr.trim(), format!("etcd-audit: no catalog at {}", missing.display()));
    }
    assert!(!dir.path().join("sub").exists(), "a query created a folder");
    let r = run_env(&["catalog", "list"], &[("XDG_DATA_HOME", path_str(dir.path()).to_string())]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("no catalog at"), "{}", r.stderr);
    assert!(!dir.path().join("etcd-audit").exists());
}

#[test]
fn a_bad_argument_is_refused_before_anything_runs() {
    let db = testdata("etcd35-scan.snapshot.db");
    for (args, says) in [
        (vec!["scan", "--fail-on", "plaintxt", path_str(&db)], "unknown --fail-on token \"plaintxt\""),
        (vec!["scan", "--kms", "vault", path_str(&db)], "expected NAME=unix:///path"),
        (vec!["scan", "--max-unpacked-bytes", "lots", path_str(&db)], "expected a size like 10G"),
        (vec!["catalog", "can-retire", "aescbc"], "expected PROVIDER:NAME"),
        (vec!["catalog", "forget", "--older-than", "soon"], "invalid duration \"soon\""),
        (vec!["scan", "--cert", "c.pem", path_str(&db)], "--key"),
    ] {
        let r = run(&args);
        assert_eq!(r.code, 2, "{args:?}");
        assert!(r.stderr.contains(says), "{args:?}: {}", r.stderr);
        assert!(r.stdout.is_empty(), "{args:?} ran: {}", r.stdout);
    }
}

#[test]
fn a_closed_stdout_ends_quietly_with_the_audits_exit_code() {
    // The scan fixture has plaintext Secrets: the audit's own exit code is 1.
    let db = testdata("etcd35-scan.snapshot.db");
    for format in ["json", "table"] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_etcd-audit"))
            .args(["scan", "--format", format, "-c"])
            .arg(testdata("scan/config-current.yaml"))
            .arg(&db)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take()); // like `| head -0`
        let mut stderr = String::new();
        child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
        let status = child.wait().unwrap();
        assert_eq!(status.code(), Some(1), "{format}: {stderr}");
        assert!(stderr.is_empty(), "{format}: {stderr}");
    }
}
