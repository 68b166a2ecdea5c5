//! Read-only, proven: every fixture form is audited while strace watches
//! every open and map of the process, the inputs' bytes and mtimes are
//! compared before and after, and the object-storage servers count the
//! methods of the requests they get.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::util::*;
use sha2::{Digest, Sha256};

/// SHA-256 and mtime of every file under `dir`.
fn fingerprint(dir: &Path, out: &mut BTreeMap<PathBuf, (String, std::time::SystemTime)>) {
    for entry in std::fs::read_dir(dir).unwrap().map(Result::unwrap) {
        let path = entry.path();
        let meta = std::fs::symlink_metadata(&path).unwrap();
        if meta.is_dir() {
            fingerprint(&path, out);
        } else if meta.is_file() {
            let sum = hex::encode(Sha256::digest(std::fs::read(&path).unwrap()));
            out.insert(path, (sum, meta.modified().unwrap()));
        }
    }
}

/// Every source form the fixtures hold: snapshots, member dbs, a data dir
/// with its WAL, and the folder of containers (zip, gzip, zlib, zstd, LZW,
/// tar, Gardener full and delta).
fn every_form() -> Vec<String> {
    let mut sources: Vec<String> = std::fs::read_dir(testdata(""))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "db"))
        .map(|p| path_str(&p).to_string())
        .collect();
    sources.sort();
    sources.push(path_str(&testdata("etcd35-forensics-datadir")).into());
    sources.push(path_str(&testdata("containers")).into());
    sources
}

#[derive(Debug, Default)]
struct Access {
    /// `(path, flags)` of every open of a file under testdata.
    opens: Vec<(String, String)>,
    /// `(path, prot, flags)` of every map of such a file.
    maps: Vec<(String, String, String)>,
}

/// Runs etcd-audit under `strace -f` and collects how it touched `under`.
fn traced(args: &[&str], under: &Path) -> Access {
    require_command("strace", "strace (Debian strace)");
    let log = tempfile::NamedTempFile::new().unwrap();
    // -y prints each fd with its path, so maps need no fd bookkeeping; a call
    // split across threads (`<unfinished ...>`) keeps its arguments on its first line.
    let status = Command::new("strace")
        .args(["-f", "-qq", "-y", "-e", "trace=open,openat,mmap", "-o"])
        .arg(log.path())
        .arg(env!("CARGO_BIN_EXE_etcd-audit"))
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(matches!(status.code(), Some(0..=2)), "{args:?}: {status}");
    let under = path_str(&under.canonicalize().unwrap()).to_string();
    let mut access = Access::default();
    for line in std::fs::read_to_string(log.path()).unwrap().lines() {
        // `PID  openat(AT_FDCWD, "path", O_RDONLY|O_CLOEXEC) = 3</abs/path>`
        let Some((_, call)) = line.split_once(' ') else { continue };
        let call = call.trim_start();
        if call.starts_with("openat(") || call.starts_with("open(") {
            let Some(path) = call.split('"').nth(1) else { continue };
            let absolute = std::path::Path::new(path).canonicalize().ok();
            if !absolute.is_some_and(|p| p.starts_with(&under)) {
                continue;
            }
            let flags = call.split(", ").find(|p| p.starts_with("O_")).unwrap_or("");
            let flags = flags.split([')', ' ']).next().unwrap_or(flags).to_string();
            access.opens.push((path.to_string(), flags));
        } else if call.starts_with("mmap(") {
            // mmap(addr, len, prot, flags, fd</path>, offset)
            let args: Vec<&str> = call.trim_start_matches("mmap(").split(", ").collect();
            if let (Some(prot), Some(flags), Some(fd)) = (args.get(2), args.get(3), args.get(4)) {
                if let Some(path) = fd.split_once('<').map(|(_, p)| p.trim_end_matches('>')) {
                    if path.starts_with(&under) {
                        access.maps.push((path.to_string(), prot.to_string(), flags.to_string()));
                    }
                }
            }
        }
    }
    access
}

#[test]
fn inputs_are_opened_and_mapped_read_only_and_never_change() {
    let dir = testdata("");
    let mut before = BTreeMap::new();
    fingerprint(&dir, &mut before);
    let sources = every_form();
    let cfg = (path_str(&testdata("scan/config-current.yaml")).to_string(), testdata("scan/config-old.yaml"));
    let mut scan = vec!["scan", "--format", "json", "--history", "--residue", "-c", &cfg.0, "-c"];
    scan.push(path_str(&cfg.1));
    scan.extend(sources.iter().map(String::as_str));
    let mut inspect = vec!["inspect", "--format", "json"];
    inspect.extend(sources.iter().map(String::as_str));
    let mut keys = vec!["keys", "--format", "json", "-c", &cfg.0];
    keys.extend(sources.iter().map(String::as_str));

    let mut opened = 0;
    for args in [&scan, &inspect, &keys] {
        let access = traced(args, &dir);
        for (path, flags) in &access.opens {
            assert!(flags.starts_with("O_RDONLY"), "{path} opened {flags}");
            for bad in ["O_WRONLY", "O_RDWR", "O_CREAT", "O_TRUNC", "O_APPEND"] {
                assert!(!flags.contains(bad), "{path} opened {flags}");
            }
        }
        for (path, prot, flags) in &access.maps {
            assert_eq!(prot, "PROT_READ", "{path} mapped {prot} {flags}");
        }
        assert!(access.maps.len() >= 10, "{:?}", access.maps);
        opened += access.opens.len();
    }
    assert!(opened > 30, "strace saw only {opened} opens of fixtures");
    let mut after = BTreeMap::new();
    fingerprint(&dir, &mut after);
    assert_eq!(before, after, "a fixture's bytes or mtime changed");
}

/// `{method: count}` a recording proxy saw.
fn methods(proxy_url: &str) -> BTreeMap<String, u64> {
    get_json(&format!("{proxy_url}/__methods"))
}

#[test]
fn object_storage_is_only_read() {
    let s3 = SupportServer::start("s3_server.py", &["open"]);
    let env = s3.s3_env("proxy");
    for source in ["s3://backups/k3s/", "s3://backups/single/etcd35-scan.snapshot.db", "s3://backups/big/"] {
        let r = run_env(&["scan", "--format", "json", source], &env);
        assert!(r.code == 0 || r.code == 1, "{source}: {}", r.stderr);
    }
    let seen = methods(s3.info["proxy"].as_str().unwrap());
    assert!(seen.get("GET").copied().unwrap_or(0) >= 4, "{seen:?}");
    assert!(seen.keys().all(|m| m == "GET" || m == "HEAD"), "S3 saw {seen:?}");

    let azurite = SupportServer::start("azure_server.py", &[]);
    let url = azurite.info["url"].as_str().unwrap().to_string();
    let env = [("AZURE_STORAGE_USE_EMULATOR", "true".to_string()), ("AZURITE_BLOB_STORAGE_URL", url.clone())];
    let r = run_env(&["scan", "--format", "json", "az://backups/etcd/"], &env);
    assert!(r.code == 0 || r.code == 1, "{}", r.stderr);
    let seen = methods(&url);
    assert!(seen.get("GET").copied().unwrap_or(0) >= 3, "{seen:?}");
    assert!(seen.keys().all(|m| m == "GET" || m == "HEAD"), "Azure saw {seen:?}");
}
