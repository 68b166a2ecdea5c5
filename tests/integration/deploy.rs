//! deploy/: the manifests are valid against Kubernetes' OpenAPI schemas
//! (PyPI kubernetes-validate, strict), keep the Job unprivileged, and the
//! CronJob's arguments run with this binary (its paths pointed at a folder
//! here and its bucket at a bundled folder of backups).

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::util::*;

fn deploy() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy")
}

fn cronjob() -> Value {
    let text = std::fs::read_to_string(deploy().join("cronjob.yaml")).unwrap();
    serde_norway::from_str(&text).unwrap()
}

#[test]
fn manifests_are_valid_kubernetes_objects() {
    require_command("kubernetes-validate", "kubernetes-validate (PyPI)");
    let mut files: Vec<PathBuf> = std::fs::read_dir(deploy())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 4, "{files:?}");
    let out = Command::new("kubernetes-validate").arg("--strict").args(&files).output().unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_job_runs_unprivileged_with_a_read_only_root() {
    let pod = &cronjob()["spec"]["jobTemplate"]["spec"]["template"]["spec"];
    assert_eq!(pod["automountServiceAccountToken"], false);
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(pod["securityContext"]["runAsUser"], 65532, "the image's user");
    assert_eq!(pod["securityContext"]["seccompProfile"]["type"], "RuntimeDefault");
    let c = &pod["containers"][0];
    let sc = &c["securityContext"];
    assert_eq!(
        (sc["readOnlyRootFilesystem"].as_bool(), sc["allowPrivilegeEscalation"].as_bool()),
        (Some(true), Some(false))
    );
    assert_eq!(sc["capabilities"]["drop"], serde_json::json!(["ALL"]));
    let mounts = c["volumeMounts"].as_array().unwrap();
    let config = mounts.iter().find(|m| m["name"] == "encryption-config").unwrap();
    assert_eq!(config["readOnly"], true);
    let volumes = pod["volumes"].as_array().unwrap();
    let secret = volumes.iter().find(|v| v["name"] == "encryption-config").unwrap();
    assert!(secret["secret"]["secretName"].is_string());
    assert!(mounts.iter().any(|m| m["mountPath"] == "/tmp"), "a writable TMPDIR");
    assert!(c["envFrom"][0]["secretRef"]["name"].is_string(), "S3 credentials from a Secret");
}

#[test]
fn the_cronjob_arguments_run_with_this_binary() {
    let dir = tempfile::tempdir().unwrap();
    let job = cronjob();
    let c = &job["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0];
    let mounts: Vec<(String, PathBuf)> = c["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let host = dir.path().join(m["name"].as_str().unwrap());
            std::fs::create_dir_all(&host).unwrap();
            (m["mountPath"].as_str().unwrap().to_string(), host)
        })
        .collect();
    std::fs::copy(
        testdata("clusters/config.yaml"),
        dir.path().join("encryption-config/encryption-config.yaml"),
    )
    .unwrap();
    let here = |arg: &str| -> String {
        if arg.starts_with("s3://") {
            return path_str(&testdata("clusters")).to_string();
        }
        for (mount, host) in &mounts {
            if let Some(i) = arg.find(mount.as_str()) {
                return format!("{}{}{}", &arg[..i], host.display(), &arg[i + mount.len()..]);
            }
        }
        arg.to_string()
    };
    let args: Vec<String> = c["args"].as_array().unwrap().iter().map(|a| here(a.as_str().unwrap())).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let r = run_env(&args, &[("TMPDIR", path_str(&dir.path().join("scratch")).to_string())]);
    // The bundled backups are months old: --max-age fails the Job (exit 1); nothing failed to read.
    assert_eq!(r.code, 1, "{}", r.stderr);
    let written = |mount: &str, file: &str| mounts.iter().find(|(m, _)| m == mount).unwrap().1.join(file);
    let report = std::fs::read_to_string(written("/var/lib/etcd-audit", "report.json")).unwrap();
    let doc: Value = serde_json::from_str(&report).unwrap();
    assert_matches_schema(&doc, &report);
    assert_eq!(doc["backups"].as_array().unwrap().len(), 5);
    assert!(written("/var/lib/etcd-audit", "catalog.redb").is_file());
    let metrics =
        std::fs::read_to_string(written("/var/lib/node-exporter/textfile", "etcd_audit.prom")).unwrap();
    assert!(metrics.contains("etcd_audit_backups{cluster=\"11111111-1111-4111-8111-111111111111\""));
}

#[test]
fn the_indexed_job_shards_a_bucket_into_one_postgres_catalog() {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(deploy().join("indexed-job.yaml")).unwrap();
    let job: Value = serde_norway::from_str(text.split("\n---\n").next().unwrap()).unwrap();
    assert_eq!(job["spec"]["completionMode"], "Indexed");
    let completions = job["spec"]["completions"].as_u64().unwrap();
    let parallelism = job["spec"]["parallelism"].as_u64().unwrap() as usize;
    let c = &job["spec"]["template"]["spec"]["containers"][0];
    let args: Vec<String> =
        c["args"].as_array().unwrap().iter().map(|a| a.as_str().unwrap().to_string()).collect();
    let shards_at = args.iter().position(|a| a == "--shards").unwrap();
    assert_eq!(args[shards_at + 1], completions.to_string(), "--shards matches completions");
    assert!(args.iter().any(|a| a == "--catalog"), "a bare --catalog: the URL comes from the env");
    // The catalog URL comes from the Secret whose shape secrets.example.yaml shows.
    let url_env =
        c["env"].as_array().unwrap().iter().find(|e| e["name"] == "ETCD_AUDIT_CATALOG_URL").unwrap();
    let secret = &url_env["valueFrom"]["secretKeyRef"];
    let examples = std::fs::read_to_string(deploy().join("secrets.example.yaml")).unwrap();
    let example = examples
        .split("\n---\n")
        .map(|d| serde_norway::from_str::<Value>(d).unwrap())
        .find(|d| d["metadata"]["name"] == secret["name"])
        .expect("secrets.example.yaml shows the catalog Secret");
    let shape = example["stringData"][secret["key"].as_str().unwrap()].as_str().unwrap();
    assert!(shape.starts_with("postgres://"), "{shape}");

    let results = dir.path().join("results");
    let config = dir.path().join("config");
    std::fs::create_dir_all(&results).unwrap();
    std::fs::create_dir_all(&config).unwrap();
    std::fs::copy(testdata("clusters/config.yaml"), config.join("encryption-config.yaml")).unwrap();
    let url = crate::pg::database();
    let shard = |index: u64| {
        // What the kubelet does: $(JOB_COMPLETION_INDEX) expanded, the Secret's URL in the env,
        // the volumes mounted.
        let args: Vec<String> = args
            .iter()
            .map(|a| {
                let a = a.replace("$(JOB_COMPLETION_INDEX)", &index.to_string());
                if a.starts_with("s3://") {
                    return path_str(&testdata("clusters")).to_string();
                }
                a.replace("/var/lib/etcd-audit", path_str(&results))
                    .replace("/etc/etcd-audit", path_str(&config))
            })
            .collect();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let env = [
            ("JOB_COMPLETION_INDEX", index.to_string()),
            ("TMPDIR", path_str(dir.path()).to_string()),
            ("ETCD_AUDIT_CATALOG_URL", url.clone()),
        ];
        let r = run_env(&args, &env);
        assert!(r.code <= 1, "shard {index}: {}", r.stderr);
    };
    // `parallelism` pods at a time, as the Job controller runs them.
    let indexes: Vec<u64> = (0..completions).collect();
    for wave in indexes.chunks(parallelism) {
        std::thread::scope(|s| {
            for &index in wave {
                s.spawn(move || shard(index));
            }
        });
    }
    let mut audited = Vec::new();
    for index in 0..completions {
        let report = std::fs::read_to_string(results.join(format!("report-{index}.json"))).unwrap();
        let doc: Value = serde_json::from_str(&report).unwrap();
        audited.extend(
            doc["backups"].as_array().unwrap().iter().map(|b| b["source"].as_str().unwrap().to_string()),
        );
        let metrics =
            std::fs::read_to_string(results.join(format!("etcd_audit_shard_{index}.prom"))).unwrap();
        assert!(metrics.contains(&format!("shard=\"{index}/{completions}\"")));
    }
    audited.sort();
    assert_eq!(audited.len(), 5, "every backup once: {audited:?}");
    audited.dedup();
    assert_eq!(audited.len(), 5);
    // The fleet's catalog, written by every shard: no merge needed.
    let fleet = url.as_str();
    let list = run(&["catalog", "list", "--catalog", fleet, "--format", "json"]);
    assert_eq!(list.json()["backups"].as_array().unwrap().len(), 5);
    // The fleet's view: the east cluster's 2 h 10 min gap, which no shard alone may report.
    let clusters = run(&[
        "catalog",
        "clusters",
        "--catalog",
        fleet,
        "--expect-every",
        "1h",
        "--fail-on",
        "age",
        "--format",
        "json",
    ]);
    assert_eq!(clusters.code, 1, "{}", clusters.stderr);
    let doc = clusters.json();
    let east = doc["clusters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["uid"] == "11111111-1111-4111-8111-111111111111")
        .unwrap();
    assert_eq!(east["failed_on"], serde_json::json!(["backup-gap"]));
    assert_eq!(east["backups"].as_array().unwrap().len(), 3);
}
