//! KMS v1 and v2 through a real plugin process (examples/kms_plugin.rs,
//! serving both gRPC APIs on a unix socket and unwrapping DEKs under the
//! fixture KEK) against the KMS values a real etcd 3.5 holds in
//! etcd35-scan.snapshot.db.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::util::*;
use serde_json::Value;

/// The test plugin. `cargo test --all-targets` builds it; a narrower `cargo
/// test` may not have, so build it when it is missing or older than the binary.
fn plugin_binary() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let audit = PathBuf::from(env!("CARGO_BIN_EXE_etcd-audit"));
        let profile_dir = audit.parent().unwrap();
        let bin = profile_dir.join("examples").join("kms_plugin");
        let stale = |b: &Path| {
            let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
            modified(b).is_none() || modified(b) < modified(&audit)
        };
        if stale(&bin) {
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let mut cmd = Command::new(cargo);
            without_test_env(&mut cmd);
            cmd.args(["build", "--quiet", "--example", "kms_plugin"])
                .current_dir(env!("CARGO_MANIFEST_DIR"))
                .env("CARGO_TARGET_DIR", profile_dir.parent().unwrap());
            if profile_dir.file_name().is_some_and(|n| n == "release") {
                cmd.arg("--release");
            }
            let status = cmd.status().expect("run cargo build --example kms_plugin");
            assert!(status.success(), "cargo build --example kms_plugin failed");
        }
        assert!(bin.exists(), "{} missing", bin.display());
        bin
    })
}

/// A running plugin process; killed on drop.
struct Plugin {
    child: Option<Child>,
    /// Path or `@name`, as given to the plugin.
    socket: String,
    calls_file: PathBuf,
    _dir: tempfile::TempDir,
}

static SEQ: AtomicUsize = AtomicUsize::new(0);

impl Plugin {
    fn start(extra: &[&str]) -> Plugin {
        let dir = tempfile::tempdir().unwrap();
        Self::start_on(dir.path().join("kms.sock").to_str().unwrap().to_string(), dir, extra)
    }

    fn start_abstract(extra: &[&str]) -> Plugin {
        let name = format!("@etcd-audit-test-{}-{}", std::process::id(), SEQ.fetch_add(1, Ordering::SeqCst));
        Self::start_on(name, tempfile::tempdir().unwrap(), extra)
    }

    fn start_on(socket: String, dir: tempfile::TempDir, extra: &[&str]) -> Plugin {
        let calls_file = dir.path().join("calls");
        let mut child = Command::new(plugin_binary())
            .arg(&socket)
            .arg("--calls-file")
            .arg(&calls_file)
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn kms_plugin");
        let mut first = String::new();
        BufReader::new(child.stdout.as_mut().unwrap()).read_line(&mut first).unwrap();
        assert_eq!(first.trim(), format!("listening {socket}"), "plugin did not start");
        Plugin { child: Some(child), socket, calls_file, _dir: dir }
    }

    fn endpoint(&self) -> String {
        format!("unix://{}{}", if self.socket.starts_with('@') { "/" } else { "" }, self.socket)
    }

    /// `--kms` overrides sending both fixture providers to this plugin.
    fn overrides(&self) -> [String; 4] {
        let e = self.endpoint();
        ["--kms".into(), format!("vault={e}"), "--kms".into(), format!("legacy={e}")]
    }

    /// Decrypt requests the plugin received, as it counts them.
    fn calls(&self) -> u64 {
        std::fs::read_to_string(&self.calls_file).unwrap().trim().parse().unwrap()
    }

    /// SIGTERM, and what the plugin printed on its way out.
    fn stop(&mut self) -> String {
        let mut child = self.child.take().unwrap();
        Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while child.try_wait().unwrap().is_none() {
            assert!(Instant::now() < deadline, "plugin ignored SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
        let mut rest = String::new();
        std::io::Read::read_to_string(child.stdout.as_mut().unwrap(), &mut rest).unwrap();
        rest
    }
}

impl Drop for Plugin {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().ok();
            child.wait().ok();
        }
    }
}

fn expected() -> Value {
    serde_json::from_str(&std::fs::read_to_string(testdata("etcd35-scan.expected.json")).unwrap()).unwrap()
}

fn db() -> String {
    path_str(&testdata("etcd35-scan.snapshot.db")).to_string()
}

fn kms_config() -> String {
    path_str(&testdata("scan/config-kms.yaml")).to_string()
}

/// `scan` with config-kms.yaml and `extra` arguments, as JSON.
fn scan_kms(extra: &[String]) -> (Run, Value) {
    let (db, cfg) = (db(), kms_config());
    let mut args = vec!["scan", db.as_str(), "-c", cfg.as_str(), "--format", "json"];
    args.extend(extra.iter().map(String::as_str));
    let r = run(&args);
    let doc = r.json();
    (r, doc)
}

/// The expected manifest's KMS values: (key, entry) for entries a test plugin can decrypt.
fn kms_cases() -> Vec<(String, Value)> {
    let cases: Vec<(String, Value)> = expected()["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["provider"] == "kms" && e["kms"]["decryptable_with_test_plugin"] == true)
        .map(|e| (e["key"].as_str().unwrap().to_string(), e.clone()))
        .collect();
    assert_eq!(cases.len(), 6, "kms2-seed ×2, kms2-dek, kms2-oldkeyid, kms1, kms1-cbc");
    cases
}

fn by_key(backup: &Value) -> BTreeMap<String, Value> {
    backup["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["key"].as_str().unwrap().to_string(), e.clone()))
        .collect()
}

/// Key pairing rows by `name api key_id`.
fn key_rows(backup: &Value) -> BTreeMap<String, Value> {
    backup["keys"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| k["provider"] == "kms")
        .map(|k| {
            let id = k["key_id"].as_str().unwrap_or("-");
            (format!("{} {} {id}", k["name"].as_str().unwrap(), k["kms_api"].as_str().unwrap()), k.clone())
        })
        .collect()
}

/// Every secret marker, and the KEK, DEKs and seeds in every encoding that could leak.
fn never_printed() -> Vec<String> {
    let exp = expected();
    let mut needles: Vec<String> =
        exp["markers"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_string()).collect();
    for k in exp["key_materials_b64"].as_array().unwrap() {
        use base64::Engine;
        let b64 = k.as_str().unwrap();
        needles.push(b64.to_string());
        needles.push(hex::encode(base64::engine::general_purpose::STANDARD.decode(b64).unwrap()));
    }
    needles
}

fn assert_nothing_secret(r: &Run) {
    for n in never_printed() {
        assert!(!r.stdout.contains(&n) && !r.stderr.contains(&n), "leaked {n}");
    }
}

#[test]
fn kms_values_decrypt_through_the_plugin() {
    let plugin = Plugin::start(&[]);
    let (r, doc) = scan_kms(&plugin.overrides());
    let b = &doc["backups"][0];
    assert_eq!(b["error"], Value::Null);
    let got = by_key(b);
    for (key, want) in kms_cases() {
        let g = &got[&key];
        let case = want["case"].as_str().unwrap();
        assert_eq!(g["class"], "decryptable", "{key}: {}", g["detail"]);
        assert_eq!(g["provider"], "kms");
        assert_eq!(g["key_name"], want["kms"]["provider_name"]);
        assert_eq!(g["kms_api"], want["kms"]["api"]);
        assert_eq!(g["encoding"], "protobuf");
        assert_eq!(g["object"]["kind"], "Secret", "{key}");
        match want["kms"]["api"].as_str().unwrap() {
            "v2" => assert_eq!(g["key_id"], want["kms"]["key_id"], "{key}"),
            _ => assert_eq!(g.get("key_id"), None, "{key}: v1 has no key ID"),
        }
        // The manifest's notes: kms2-oldkeyid (keyID kek-0, the plugin reports kek-1),
        // kms2-dek (type 0) and kms1-cbc (CBC fallback) are stale for a KMS reason.
        let (stale, reason) = match case {
            "kms2-oldkeyid" => (true, Some("kek-0")),
            "kms2-dek" => (true, Some("AES_GCM_KEY")),
            "kms1-cbc" => (true, Some("CBC fallback")),
            // legacy is the second provider of config-kms.yaml: kube-apiserver
            // writes with vault, so legacy values are stale by position only.
            "kms1" => (true, None),
            _ => (false, None),
        };
        assert_eq!(g["stale"], stale, "{key}: {}", g["detail"]);
        match reason {
            Some(r) => assert!(g["detail"].as_str().unwrap().contains(r), "{key}: {}", g["detail"]),
            None => assert_eq!(g["detail"], Value::Null, "{key}"),
        }
    }
    for bad in ["kms2-truncated", "kms2-bad-wiretype", "kms2-empty-data", "kms1-short"] {
        assert_eq!(got[&format!("/registry/secrets/malformed/{bad}")]["class"], "malformed", "{bad}");
    }

    // Key pairing: one row per (name, api, key ID), the plugin's view beside it.
    let rows = key_rows(b);
    assert_eq!(rows.keys().collect::<Vec<_>>(), ["legacy v1 -", "vault v2 kek-0", "vault v2 kek-1"]);
    let (v1, old, cur) = (&rows["legacy v1 -"], &rows["vault v2 kek-0"], &rows["vault v2 kek-1"]);
    assert_eq!((&cur["entries"], &cur["decryptable"]), (&Value::from(3), &Value::from(3)));
    assert_eq!((&old["entries"], &old["decryptable"]), (&Value::from(1), &Value::from(1)));
    assert_eq!((&v1["entries"], &v1["decryptable"]), (&Value::from(2), &Value::from(2)));
    for row in [v1, old, cur] {
        assert_eq!(row["available"], true);
        assert_eq!(row["plugin"]["endpoint"], plugin.endpoint());
        assert_eq!(row["plugin"]["overridden"], true);
        assert_eq!(row["plugin"]["error"], Value::Null);
    }
    assert_eq!(
        (&cur["write_key"], &old["write_key"], &v1["write_key"]),
        (&true.into(), &false.into(), &false.into())
    );
    assert_eq!(cur["plugin"]["status"]["key_id"], "kek-1");
    assert_eq!(cur["plugin"]["status"]["healthz"], "ok");
    assert_eq!(v1["plugin"]["status"]["version"], "v1beta1");

    // One Decrypt per distinct DEK or seed: six values, six DEKs.
    assert_eq!(plugin.calls(), 6);
    assert_eq!(cur["plugin"]["decrypt_calls"], 4);
    assert_eq!(v1["plugin"]["decrypt_calls"], 2);
    assert_nothing_secret(&r);
}

#[test]
fn legacy_first_in_the_provider_list_is_not_stale() {
    let plugin = Plugin::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("legacy-first.yaml");
    std::fs::write(
        &cfg,
        format!(
            "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n- resources: [secrets]\n  providers:\n  - kms: {{apiVersion: v1, name: legacy, endpoint: '{e}'}}\n  - kms: {{apiVersion: v2, name: vault, endpoint: '{e}'}}\n  - identity: {{}}\n",
            e = plugin.endpoint()
        ),
    )
    .unwrap();
    let r = run(&["scan", &db(), "-c", path_str(&cfg), "--format", "json"]);
    let got = by_key(&r.json()["backups"][0]);
    let stale = |k: &str| got[&format!("/registry/secrets/{k}")]["stale"].clone();
    assert_eq!(stale("kms1/s1"), false, "GCM data of the first provider");
    assert_eq!(stale("kms1-cbc/s1"), true, "CBC fallback");
    assert_eq!(stale("kms2-seed/s1"), true, "vault is now the second provider");
    let keys = key_rows(&r.json()["backups"][0]);
    assert_eq!(keys["legacy v1 -"]["write_key"], true);
    assert_eq!(keys["legacy v1 -"]["plugin"]["overridden"], false);
}

#[test]
fn each_dek_is_unwrapped_once_per_run() {
    // The same backup twice in one run, with history: every KMS value is read
    // twice, the plugin is asked once per DEK.
    let plugin = Plugin::start(&[]);
    let (db, cfg) = (db(), kms_config());
    let mut args = vec!["scan", &db, &db, "-c", &cfg, "--history", "--format", "json"];
    let overrides = plugin.overrides();
    args.extend(overrides.iter().map(String::as_str));
    let r = run(&args);
    let doc = r.json();
    let backups = doc["backups"].as_array().unwrap();
    assert_eq!(backups.len(), 2);
    let decrypted: usize = backups
        .iter()
        .map(|b| {
            b["entries"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|e| e["provider"] == "kms" && e["class"] == "decryptable")
                .count()
        })
        .sum();
    assert_eq!(decrypted, 12);
    assert_eq!(plugin.calls(), 6, "one Decrypt per distinct DEK, not per value");
    let mut plugin = plugin;
    assert_eq!(plugin.stop().trim(), "decrypt_calls 6");
}

#[test]
fn stopped_plugin_gives_unknown_key_and_the_run_goes_on() {
    let mut plugin = Plugin::start(&[]);
    assert_eq!(plugin.stop().trim(), "decrypt_calls 0");
    let (r, doc) = scan_kms(&plugin.overrides());
    assert_eq!(r.code, 1, "unknown-key fails the default policy; the report is still produced");
    let b = &doc["backups"][0];
    assert_eq!(b["error"], Value::Null);
    let got = by_key(b);
    for (key, _) in kms_cases() {
        let g = &got[&key];
        assert_eq!(g["class"], "unknown-key", "{key}");
        let detail = g["detail"].as_str().unwrap();
        assert!(detail.contains("not reachable") && detail.contains(&plugin.socket), "{key}: {detail}");
    }
    for row in key_rows(b).values() {
        assert_eq!(row["available"], false);
        assert!(row["plugin"]["error"].as_str().unwrap().contains("not reachable"));
        assert_eq!(row["plugin"]["decrypt_calls"], 0);
    }
    assert!(b["findings"].as_array().unwrap().iter().any(|f| f["code"] == "unknown-key"));
    let finding =
        b["findings"].as_array().unwrap().iter().find(|f| f["code"] == "kms-plugin-unavailable").unwrap();
    assert!(finding["examples"][0].as_str().unwrap().contains(&plugin.socket), "{finding}");
}

#[test]
fn plugin_killed_mid_run() {
    // Decrypt takes 1.5 s; the plugin dies while the first call is in flight.
    let mut plugin = Plugin::start(&["--delay-ms", "1500"]);
    let (db, cfg) = (db(), kms_config());
    let mut args: Vec<String> = ["scan", &db, "-c", &cfg, "--format", "json"].map(String::from).to_vec();
    args.extend(plugin.overrides());
    let scan = std::thread::spawn(move || run(&args.iter().map(String::as_str).collect::<Vec<_>>()));
    let deadline = Instant::now() + Duration::from_secs(60);
    while plugin.calls() == 0 {
        assert!(Instant::now() < deadline, "no Decrypt call arrived");
        std::thread::sleep(Duration::from_millis(5));
    }
    let mut child = plugin.child.take().unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    let r = scan.join().unwrap();
    assert_eq!(r.code, 1);
    let got = by_key(&r.json()["backups"][0]);
    for (key, _) in kms_cases() {
        let g = &got[&key];
        assert_eq!(g["class"], "unknown-key", "{key}: {}", g["detail"]);
        assert!(g["detail"].as_str().unwrap().contains(&plugin.socket), "{key}: {}", g["detail"]);
    }
    let calls = plugin.calls();
    assert!((1..=3).contains(&calls), "a plugin found gone is not asked again: {calls} calls");
}

/// config-kms.yaml with both endpoints at `endpoint` and a short timeout.
fn short_timeout_config(dir: &Path, endpoint: &str, timeout: &str) -> PathBuf {
    let text = std::fs::read_to_string(kms_config()).unwrap();
    let mut out = String::new();
    for line in text.lines() {
        if let Some(indent) = line.find("endpoint:") {
            out.push_str(&format!("{}endpoint: {endpoint}\n", &line[..indent]));
            out.push_str(&format!("{}timeout: {timeout}\n", &line[..indent]));
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    let path = dir.join("config-kms-short.yaml");
    std::fs::write(&path, out).unwrap();
    path
}

#[test]
fn slow_plugin_times_out_to_unknown_key() {
    let dir = tempfile::tempdir().unwrap();
    // Decrypt slower than the config's 300ms timeout: one timeout per plugin
    // and worker at most, not one per value.
    let slow = Plugin::start(&["--delay-ms", "5000"]);
    let cfg = short_timeout_config(dir.path(), &slow.endpoint(), "300ms");
    let r = run(&["scan", &db(), "-c", path_str(&cfg), "--format", "json"]);
    assert_eq!(r.code, 1);
    let got = by_key(&r.json()["backups"][0]);
    for (key, _) in kms_cases() {
        let g = &got[&key];
        assert_eq!(g["class"], "unknown-key", "{key}: {}", g["detail"]);
        assert!(
            g["detail"].as_str().unwrap().contains("did not answer Decrypt within the timeout of 300ms"),
            "{key}: {}",
            g["detail"]
        );
    }
    let calls = slow.calls();
    assert!((1..=4).contains(&calls), "a timed-out plugin is not asked again: {calls} calls");

    // Status slower than the timeout: the plugin is never asked to decrypt.
    let stuck = Plugin::start(&["--status-delay-ms", "5000"]);
    let cfg = short_timeout_config(dir.path(), &stuck.endpoint(), "300ms");
    let r = run(&["scan", &db(), "-c", path_str(&cfg), "--format", "json"]);
    let got = by_key(&r.json()["backups"][0]);
    for (key, _) in kms_cases() {
        let d = got[&key]["detail"].as_str().unwrap().to_string();
        assert_eq!(got[&key]["class"], "unknown-key");
        assert!(
            d.contains("within the timeout of 300ms") && (d.contains("Status") || d.contains("Version")),
            "{d}"
        );
    }
    assert_eq!(stuck.calls(), 0);
}

#[test]
fn refusing_plugin_gives_undecryptable() {
    let plugin = Plugin::start(&["--fail-decrypt"]);
    let (r, doc) = scan_kms(&plugin.overrides());
    assert_eq!(r.code, 1);
    let b = &doc["backups"][0];
    let got = by_key(b);
    for (key, _) in kms_cases() {
        let g = &got[&key];
        assert_eq!(g["class"], "undecryptable", "{key}: {}", g["detail"]);
        assert!(g["detail"].as_str().unwrap().contains("decryption refused"), "{key}: {}", g["detail"]);
    }
    assert_eq!(plugin.calls(), 6, "a refusal is cached like a DEK");
    assert!(key_rows(b).values().all(|k| k["available"] == true && k["decryptable"] == 0));
}

#[test]
fn abstract_socket_plugin() {
    let plugin = Plugin::start_abstract(&[]);
    assert!(plugin.endpoint().starts_with("unix:///@"));
    let (_, doc) = scan_kms(&plugin.overrides());
    let got = by_key(&doc["backups"][0]);
    for (key, _) in kms_cases() {
        assert_eq!(got[&key]["class"], "decryptable", "{key}: {}", got[&key]["detail"]);
    }
    assert_eq!(plugin.calls(), 6);
}

#[test]
fn unhealthy_plugin_is_flagged() {
    let plugin = Plugin::start(&["--healthz", "kek unreachable"]);
    let (_, doc) = scan_kms(&plugin.overrides());
    let b = &doc["backups"][0];
    let got = by_key(b);
    let seed = &got["/registry/secrets/kms2-seed/s1"];
    assert_eq!(seed["class"], "decryptable", "Decrypt still answers");
    assert!(seed["detail"].as_str().unwrap().contains("healthz \"kek unreachable\""), "{seed}");
    let rows = key_rows(b);
    let vault = &rows["vault v2 kek-1"];
    assert_eq!(vault["available"], false);
    assert!(vault["plugin"]["error"].as_str().unwrap().contains("not \"ok\""));
    assert_eq!(rows["legacy v1 -"]["available"], true, "v1 has no health status");
}

#[test]
fn plugin_with_a_wrong_key_id_or_version() {
    // A plugin whose current key is kek-2: every v2 value is stale.
    let rotated = Plugin::start(&["--key-id", "kek-2"]);
    let (_, doc) = scan_kms(&rotated.overrides());
    let got = by_key(&doc["backups"][0]);
    let seed = &got["/registry/secrets/kms2-seed/s1"];
    assert_eq!((&seed["class"], &seed["stale"]), (&"decryptable".into(), &true.into()));
    assert!(seed["detail"].as_str().unwrap().contains("kek-2"));
    // A v2 plugin speaking an API version kube-apiserver would refuse.
    let odd = Plugin::start(&["--version", "v3"]);
    let (_, doc) = scan_kms(&odd.overrides());
    let got = by_key(&doc["backups"][0]);
    let seed = &got["/registry/secrets/kms2-seed/s1"];
    assert_eq!(seed["class"], "unknown-key");
    assert!(seed["detail"].as_str().unwrap().contains("\"v3\""), "{seed}");
    assert_eq!(got["/registry/secrets/kms1/s1"]["class"], "decryptable", "v1beta1 is unaffected");
    assert_eq!(odd.calls(), 2, "only the v1 DEKs were asked for");
}

#[test]
fn override_names_a_provider_no_config_has() {
    // No KMS config at all: `--kms vault=…` alone lets the v2 values decrypt;
    // legacy stays unknown-key, and no provider list holds vault.
    let plugin = Plugin::start(&[]);
    let (db, cur, old) = (
        db(),
        path_str(&testdata("scan/config-current.yaml")).to_string(),
        path_str(&testdata("scan/config-old.yaml")).to_string(),
    );
    let vault = format!("vault={}", plugin.endpoint());
    let r = run(&["scan", &db, "-c", &cur, "-c", &old, "--kms", &vault, "--format", "json"]);
    let b = &r.json()["backups"][0];
    let got = by_key(b);
    assert_eq!(got["/registry/secrets/kms2-seed/s2"]["class"], "decryptable");
    assert_eq!(got["/registry/secrets/kms2-seed/s2"]["stale"], true, "not the first provider of secrets");
    assert_eq!(got["/registry/secrets/kms1/s1"]["class"], "unknown-key");
    assert!(got["/registry/secrets/kms1/s1"]["detail"].as_str().unwrap().contains("no supplied config"));
    let findings = b["findings"].as_array().unwrap();
    let outside = findings.iter().find(|f| f["code"] == "key-not-in-provider-list").unwrap();
    assert!(outside["examples"].as_array().unwrap().iter().any(|e| e == "/registry/secrets/kms2-seed/s2"));
    assert_eq!(plugin.calls(), 4);
}

#[test]
fn keys_command_names_the_kek_versions_a_backup_needs() {
    let plugin = Plugin::start(&[]);
    let (db, cfg) = (db(), kms_config());
    let mut args = vec!["keys", db.as_str(), "-c", cfg.as_str()];
    let overrides = plugin.overrides();
    args.extend(overrides.iter().map(String::as_str));
    let r = run(&args);
    assert!(r.stdout.contains("key id kek-0") && r.stdout.contains("key id kek-1"), "{}", r.stdout);
    let mut json_args = args.clone();
    json_args.extend(["--format", "json"]);
    let doc = run(&json_args).json();
    let missing = doc["backups"][0]["missing"].as_array().unwrap();
    assert!(!missing.iter().any(|m| m.as_str().unwrap().starts_with("kms:")), "{missing:?}");
    assert_nothing_secret(&r);
}

#[test]
fn exposure_asks_the_kms_only_under_a_model_that_reaches_it() {
    let plugin = Plugin::start(&[]);
    let (db, cfg) = (db(), kms_config());
    let overrides = plugin.overrides();
    let exposure = |assume: &str| {
        let mut args = vec!["exposure", &db, "-c", &cfg, "--format", "json", "--assume", assume];
        args.extend(overrides.iter().map(String::as_str));
        let r = run(&args);
        assert_nothing_secret(&r);
        r.json()
    };
    let listed = |doc: &Value| -> BTreeMap<String, String> {
        doc["secrets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                (s["key"].as_str().unwrap().to_string(), s["readable_from"].as_str().unwrap().to_string())
            })
            .collect()
    };
    let keys = exposure("backup+keys");
    assert_eq!(plugin.calls(), 0, "a model without the KMS never asks it");
    let cases = kms_cases();
    assert!(cases.iter().all(|(key, _)| !listed(&keys).contains_key(key)));

    let kms = exposure("backup+keys+kms");
    assert!(plugin.calls() > 0);
    let got = listed(&kms);
    for (key, _) in &cases {
        assert_eq!(got.get(key).map(String::as_str), Some("backup+keys+kms"), "{key}");
    }
    let models: Vec<&str> =
        kms["models"].as_array().unwrap().iter().map(|m| m["model"].as_str().unwrap()).collect();
    assert_eq!(models, ["backup", "backup+keys", "backup+keys+kms"]);
    let summary = kms["summary"].as_str().unwrap();
    assert!(summary.contains(&format!("; {} more with access to the KMS", cases.len())), "{summary}");
}
