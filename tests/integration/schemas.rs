//! Every JSON document matches its published JSON Schema (docs/schema/,
//! checked with the PyPI `jsonschema` validator), over reports that use
//! every part of it: history, residue, WAL, k3s bootstrap data, a per-cluster
//! sweep with findings, containers, failed sources, catalog queries.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::util::*;

fn td(name: &str) -> String {
    path_str(&testdata(name)).to_string()
}

fn schema_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/schema")
}

/// Runs each command and validates its stdout against `docs/schema/NAME.v1.json`.
fn validate(reports: &[(&str, Vec<String>)]) {
    require_python(&["jsonschema"]);
    let dir = tempfile::tempdir().unwrap();
    let mut listing = Vec::new();
    for (i, (name, args)) in reports.iter().enumerate() {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let r = run(&args);
        assert!(r.code <= 2 && r.stdout.starts_with('{'), "{args:?}: {}", r.stderr);
        let file = dir.path().join(format!("{i}.json"));
        std::fs::write(&file, &r.stdout).unwrap();
        listing.push(format!("{name} {}", file.display()));
    }
    let check = "import json, sys, jsonschema\n\
                 bad = 0\n\
                 for line in sys.stdin.read().splitlines():\n\
                 \x20   name, path = line.split(' ', 1)\n\
                 \x20   schema = json.load(open(f'{sys.argv[1]}/{name}.v1.json'))\n\
                 \x20   cls = jsonschema.validators.validator_for(schema)\n\
                 \x20   cls.check_schema(schema)\n\
                 \x20   for e in cls(schema).iter_errors(json.load(open(path))):\n\
                 \x20       bad += 1\n\
                 \x20       print(name, path, list(e.absolute_path), e.message[:300])\n\
                 sys.exit(1 if bad else 0)";
    let mut child = Command::new("python3")
        .args(["-c", check, path_str(&schema_dir())])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(listing.join("\n").as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "documents do not match their schema:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

fn args(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| s.to_string()).collect()
}

#[test]
fn every_document_matches_its_published_schema() {
    let dir = tempfile::tempdir().unwrap();
    let catalog = dir.path().join("catalog.redb");
    let catalog_arg = format!("--catalog={}", catalog.display());
    let r = run(&[
        "scan",
        &td("clusters"),
        &td("etcd35-scan.snapshot.db"),
        "-c",
        &td("clusters/config.yaml"),
        &catalog_arg,
        "-q",
    ]);
    assert!(r.code <= 1, "{}", r.stderr);
    let cat = path_str(&catalog).to_string();
    let export = dir.path().join("export.jsonl");
    assert_eq!(run(&["catalog", "export", "--catalog", &cat, "-o", path_str(&export)]).code, 0);
    let merged = path_str(&dir.path().join("merged.redb")).to_string();
    let (scan_db, forensics, config, old) = (
        td("etcd35-scan.snapshot.db"),
        td("etcd35-forensics-datadir"),
        td("scan/config-current.yaml"),
        td("scan/config-old.yaml"),
    );
    validate(&[
        (
            "scan",
            args(&[
                "scan",
                &scan_db,
                &forensics,
                &td("etcd34-basic.snapshot.db"),
                &td("containers"),
                "/nonexistent",
                "-c",
                &config,
                "-c",
                &old,
                "--history",
                "--residue",
                "--format",
                "json",
                "--max-age",
                "1d",
                "--now",
                "2026-11-30T00:00:00Z",
            ]),
        ),
        (
            "scan",
            args(&[
                "scan",
                &td("k3s/etcd-snapshot-server-1-1795900000"),
                &td("k3s/empty"),
                "--k3s-token",
                &td("k3s/token"),
                "--history",
                "--residue",
                "--format",
                "json",
            ]),
        ),
        (
            "scan",
            args(&[
                "scan",
                &td("clusters"),
                "-c",
                &td("clusters/config.yaml"),
                "--expect-every",
                "1h",
                "--max-age",
                "1h",
                "--format",
                "json",
            ]),
        ),
        (
            "scan",
            args(&[
                "scan",
                &td("hygiene/hygiene.snapshot.db"),
                "-c",
                &td("hygiene/config-hygiene.yaml"),
                "--format",
                "json",
            ]),
        ),
        (
            "inspect",
            args(&["inspect", &scan_db, &forensics, &td("containers"), "/nonexistent", "--format", "json"]),
        ),
        (
            "keys",
            args(&["keys", &scan_db, &td("clusters"), "/nonexistent", "-c", &config, "--format", "json"]),
        ),
        (
            "configs",
            args(&[
                "configs",
                &config,
                &old,
                &td("scan/config-kms.yaml"),
                &td("hygiene/config-hygiene.yaml"),
                "--format",
                "json",
            ]),
        ),
        ("catalog", args(&["catalog", "list", "--catalog", &cat, "--format", "json"])),
        ("catalog", args(&["catalog", "can-retire", "aescbc:shared", "--catalog", &cat, "--format", "json"])),
        (
            "catalog",
            args(&["catalog", "needs", &td("clusters/alpha.db"), "--catalog", &cat, "--format", "json"]),
        ),
        (
            "catalog",
            args(&["catalog", "forget", "--older-than", "1000d", "--catalog", &cat, "--format", "json"]),
        ),
        (
            "catalog",
            args(&["catalog", "import", path_str(&export), "--catalog", &merged, "--format", "json"]),
        ),
        (
            "exposure",
            args(&[
                "exposure",
                &td("exposure/datadir"),
                &td("exposure/snapshot.db"),
                "-c",
                &td("exposure/config.yaml"),
                "--format",
                "json",
            ]),
        ),
    ]);
}

#[test]
fn the_binary_prints_the_published_schemas_and_the_generator_agrees() {
    for name in ["scan", "inspect", "keys", "configs", "catalog", "exposure"] {
        let r = run(&["schema", name]);
        assert_eq!(r.code, 0);
        let file = std::fs::read_to_string(schema_dir().join(format!("{name}.v1.json"))).unwrap();
        assert_eq!(r.stdout, file, "{name}");
    }
    // docs/schema/schemas.py writes the same files (no hand edit drifted from it).
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new("python3").arg(schema_dir().join("schemas.py")).arg(dir.path()).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let entry = entry.unwrap();
        let committed = std::fs::read_to_string(schema_dir().join(entry.file_name())).unwrap();
        assert_eq!(std::fs::read_to_string(entry.path()).unwrap(), committed, "{:?}", entry.file_name());
    }
}
