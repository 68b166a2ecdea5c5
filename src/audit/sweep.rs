//! A sweep grouped per cluster (by the kube-system Namespace's UID): which
//! backups each cluster has, its newest and oldest, the keys they need, and
//! what only shows across backups: gaps in the schedule (`--expect-every`),
//! a newest backup older than `--max-age`, backups spanning Kubernetes
//! minor versions, and one key in several clusters.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde::Serialize;
use serde_json::json;

use super::findings::{Code, Finding, Severity};
use super::record::ScanReport;

/// What the cluster-level findings are judged against.
#[derive(Clone, Debug, Default)]
pub struct SweepOptions {
    /// `--expect-every`: a longer interval between two backups is a gap.
    pub expect_every: Option<Duration>,
    /// `--max-age`: a cluster whose newest backup is older is `backup-too-old`.
    pub max_age: Option<Duration>,
    /// `--now` (Unix seconds); the clock when unset.
    pub now: Option<i64>,
    /// `--rotate-every`: a write key older than this is `key-rotation-overdue`.
    pub rotate_every: Option<Duration>,
    /// A shard's view (`--shard`): only its share of each cluster's backups.
    /// Gaps and the age of a cluster's newest backup need them all, so they
    /// are left to the fleet's catalog (`catalog clusters`).
    pub partial: bool,
}

impl SweepOptions {
    fn now(&self) -> i64 {
        crate::time::now_or(self.now)
    }
}

/// One backup as the sweep sees it: from this run's report, or a record
/// of an earlier audit (the catalog).
#[derive(Clone, Debug)]
pub struct Member {
    pub source: String,
    pub uid: Option<String>,
    pub kubernetes_version: Option<String>,
    /// Unix seconds and RFC 3339.
    pub taken_at: Option<(i64, String)>,
    /// Keys its values need (`entries > 0`).
    pub keys: Vec<MemberKey>,
}

#[derive(Clone, Debug)]
pub struct MemberKey {
    /// `provider:name`.
    pub key: String,
    pub fingerprint: Option<String>,
    pub write_key: bool,
}

impl Member {
    pub fn of_report(source: &str, r: &ScanReport) -> Member {
        Member {
            source: source.to_string(),
            uid: r.cluster.as_ref().and_then(|c| c.uid.clone()),
            kubernetes_version: r.cluster.as_ref().and_then(|c| c.kubernetes_version.clone()),
            taken_at: r.taken_at.as_ref().map(|t| (t.unix, t.estimate.clone())),
            keys: r
                .keys
                .iter()
                .filter(|k| k.entries > 0)
                .map(|k| MemberKey {
                    key: format!("{}:{}", k.provider.as_str(), k.name),
                    fingerprint: k.fingerprint.clone(),
                    write_key: k.write_key,
                })
                .collect(),
        }
    }
}

/// `clusters[]`: the backups of one cluster (or of no known cluster).
#[derive(Debug, Serialize)]
pub struct ClusterGroup {
    /// `null` for the group of backups whose cluster is unknown.
    pub uid: Option<String>,
    pub kubernetes_versions: Vec<String>,
    /// Sources, oldest first (those without a time last, by name).
    pub backups: Vec<String>,
    pub newest: Option<Dated>,
    pub oldest: Option<Dated>,
    /// Every key a backup of this cluster needs, by fingerprint when known.
    pub keys: Vec<KeySeen>,
    pub findings: Vec<Finding>,
    /// The `--fail-on` tokens these findings matched (set by the caller's policy).
    pub failed_on: Vec<&'static str>,
}

/// A key the backups of a cluster need, and when it was seen.
#[derive(Debug, Serialize)]
pub struct KeySeen {
    /// `provider:name`.
    pub key: String,
    pub fingerprint: Option<String>,
    /// kube-apiserver with the first supplied config writes with it.
    pub write_key: bool,
    /// `taken_at` of the oldest and newest backup whose values need it
    /// (`null` when none of them has a time).
    pub first_seen: Option<String>,
    pub last_seen: Option<String>,
    #[serde(skip)]
    first_unix: Option<i64>,
}

#[derive(Debug, Serialize)]
pub struct Dated {
    pub source: String,
    pub taken_at: String,
}

/// Backups by cluster UID, the unknown cluster (`(true, None)`) last.
type ByCluster = BTreeMap<(bool, Option<String>), Vec<Member>>;

/// A dated backup: source, Unix seconds, RFC 3339.
type Stamp<'m> = (&'m str, i64, &'m str);

/// Groups backups by cluster, in UID order, the unknown cluster last.
/// `shown`: the clusters to report (all when `None`); the others only count
/// for `key-shared-across-clusters` (a catalog's other clusters).
pub fn group(
    members: impl IntoIterator<Item = Member>,
    shown: Option<&BTreeSet<String>>,
    opts: &SweepOptions,
) -> Vec<ClusterGroup> {
    let mut by_uid: ByCluster = BTreeMap::new();
    for m in members {
        by_uid.entry((m.uid.is_none(), m.uid.clone())).or_default().push(m);
    }
    let shared = shared_keys(&by_uid);
    let shown = |uid: &Option<String>| match (shown, uid) {
        (Some(shown), Some(uid)) => shown.contains(uid),
        _ => true,
    };
    by_uid
        .into_iter()
        .filter(|((_, uid), _)| shown(uid))
        .map(|((_, uid), members)| {
            let mut group = one(uid, members, opts);
            if let Some(uid) = &group.uid {
                group.findings.extend(shared_finding(uid, &shared));
            }
            group
        })
        .collect()
}

fn one(uid: Option<String>, mut members: Vec<Member>, opts: &SweepOptions) -> ClusterGroup {
    let when = |m: &Member| m.taken_at.as_ref().map(|t| t.0);
    members.sort_by(|a, b| {
        (when(a).is_none(), when(a), &a.source).cmp(&(when(b).is_none(), when(b), &b.source))
    });
    let dated: Vec<Stamp> = members
        .iter()
        .filter_map(|m| m.taken_at.as_ref().map(|(u, e)| (m.source.as_str(), *u, e.as_str())))
        .collect();
    let date =
        |(source, _, estimate): &Stamp| Dated { source: source.to_string(), taken_at: estimate.to_string() };
    let versions: BTreeSet<String> = members.iter().filter_map(|m| m.kubernetes_version.clone()).collect();
    let keys = keys_seen(&members);
    let mut findings = Vec::new();
    if uid.is_some() {
        if !opts.partial {
            findings.extend(gaps(&dated, opts));
            findings.extend(too_old(dated.last(), opts));
        }
        findings.extend(mixed_versions(&versions));
        findings.extend(rotation_overdue(&keys, opts));
    }
    ClusterGroup {
        uid,
        kubernetes_versions: versions.into_iter().collect(),
        newest: dated.last().map(date),
        oldest: dated.first().map(date),
        backups: members.iter().map(|m| m.source.clone()).collect(),
        keys,
        findings,
        failed_on: Vec::new(),
    }
}

/// `backup-gap`: intervals between consecutive backups longer than `--expect-every`.
fn gaps(dated: &[Stamp], opts: &SweepOptions) -> Option<Finding> {
    let every = opts.expect_every?.as_secs() as i64;
    let gaps: Vec<(&Stamp, &Stamp, i64)> = dated
        .windows(2)
        .filter(|w| w[1].1 - w[0].1 > every)
        .map(|w| (&w[0], &w[1], w[1].1 - w[0].1))
        .collect();
    (!gaps.is_empty()).then(|| {
        let n = gaps.len() as u64;
        let mut f = Finding::new(
            Severity::Medium,
            Code::BackupGap,
            n,
            format!(
                "{n} intervals between consecutive backups are longer than --expect-every ({} min)",
                every / 60
            ),
            gaps.iter()
                .map(|((a, _, ta), (b, _, tb), s)| format!("{ta} ({a}) to {tb} ({b}): {} min", s / 60)),
        );
        f.details = gaps
            .iter()
            .map(|((a, _, ta), (b, _, tb), s)| {
                json!({"from": ta, "from_source": a, "to": tb, "to_source": b, "seconds": s})
            })
            .collect();
        f.remediation =
            Some("Check the backup schedule's history (failed jobs, paused timers) for these intervals.");
        f
    })
}

/// `backup-too-old` at cluster level: even the newest backup is older than `--max-age`.
fn too_old(newest: Option<&Stamp>, opts: &SweepOptions) -> Option<Finding> {
    let (max_age, (source, unix, estimate)) = (opts.max_age?, newest?);
    let age = opts.now() - unix;
    (age > max_age.as_secs() as i64).then(|| {
        let mut f = Finding::new(
            Severity::Medium,
            Code::BackupTooOld,
            1,
            format!(
                "the newest backup of this cluster was taken at {estimate} ({} h before now), older than --max-age ({} h)",
                age / 3600,
                max_age.as_secs() / 3600
            ),
            std::iter::once(source.to_string()),
        );
        f.remediation = Some("Check that scheduled backups of this cluster run and reach this location.");
        f
    })
}

/// The keys of `members` (oldest first), one row per fingerprint (or
/// `provider:name` when no supplied config holds the key).
fn keys_seen(members: &[Member]) -> Vec<KeySeen> {
    let mut seen: BTreeMap<(String, Option<String>), KeySeen> = BTreeMap::new();
    for m in members {
        for k in &m.keys {
            let row = seen.entry((k.key.clone(), k.fingerprint.clone())).or_insert_with(|| KeySeen {
                key: k.key.clone(),
                fingerprint: k.fingerprint.clone(),
                write_key: false,
                first_seen: None,
                last_seen: None,
                first_unix: None,
            });
            row.write_key |= k.write_key;
            if let Some((unix, estimate)) = &m.taken_at {
                if row.first_unix.is_none_or(|first| *unix < first) {
                    (row.first_unix, row.first_seen) = (Some(*unix), Some(estimate.clone()));
                }
                row.last_seen = Some(estimate.clone());
            }
        }
    }
    seen.into_values().collect()
}

/// `key-rotation-overdue`: a write key already in use longer than
/// `--rotate-every` ago (from the oldest backup whose values need it).
fn rotation_overdue(keys: &[KeySeen], opts: &SweepOptions) -> Option<Finding> {
    let every = opts.rotate_every?.as_secs() as i64;
    let now = opts.now();
    let overdue: Vec<(&KeySeen, i64)> = keys
        .iter()
        .filter(|k| k.write_key)
        .filter_map(|k| Some((k, now - k.first_unix?)))
        .filter(|(_, age)| *age > every)
        .collect();
    (!overdue.is_empty()).then(|| {
        let n = overdue.len() as u64;
        let mut f = Finding::new(
            Severity::Medium,
            Code::KeyRotationOverdue,
            n,
            format!("{n} write keys were already in use more than --rotate-every ({} d) ago", every / 86_400),
            overdue.iter().map(|(k, age)| {
                format!(
                    "{} ({}): in backups since {} ({} d)",
                    k.key,
                    k.fingerprint.as_deref().unwrap_or("not supplied"),
                    k.first_seen.as_deref().unwrap_or("?"),
                    age / 86_400
                )
            }),
        );
        f.remediation = Some("Rotate: add a new key first in the provider list, restart the apiservers, rewrite all Secrets, then drop the old key.");
        f
    })
}

/// `restore-mixed-versions`: the backups span Kubernetes minor versions.
fn mixed_versions(versions: &BTreeSet<String>) -> Option<Finding> {
    let minors: BTreeSet<(u32, u32)> = versions.iter().filter_map(|v| minor(v)).collect();
    (minors.len() > 1).then(|| {
        let mut f = Finding::new(
            Severity::Low,
            Code::RestoreMixedVersions,
            minors.len() as u64,
            format!(
                "backups of this cluster span {} Kubernetes minor versions: restoring an older one onto newer control-plane binaries skips the storage migrations between them",
                minors.len()
            ),
            versions.iter().cloned(),
        );
        f.remediation = Some("Restore a backup taken with the control plane's current minor version, or restore onto matching binaries.");
        f
    })
}

/// `v1.30.2`, `v1.29.10+k3s1` → (1, 30).
fn minor(version: &str) -> Option<(u32, u32)> {
    let mut parts = version.strip_prefix('v').unwrap_or(version).split(['.', '+', '-']);
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

/// A key, by fingerprint: its label and the clusters whose backups hold it.
type Shared = BTreeMap<String, (String, BTreeSet<String>)>;

/// The key fingerprints found in backups of more than one known cluster.
fn shared_keys(by_uid: &ByCluster) -> Shared {
    let mut keys: Shared = BTreeMap::new();
    for ((_, uid), members) in by_uid {
        let Some(uid) = uid else { continue };
        for k in members.iter().flat_map(|m| &m.keys) {
            if let Some(fp) = &k.fingerprint {
                keys.entry(fp.clone())
                    .or_insert_with(|| (k.key.clone(), BTreeSet::new()))
                    .1
                    .insert(uid.clone());
            }
        }
    }
    keys.retain(|_, (_, uids)| uids.len() > 1);
    keys
}

/// `key-shared-across-clusters` for the cluster `uid`: a leak of one
/// cluster's backups and keys opens the other's too.
fn shared_finding(uid: &str, shared: &Shared) -> Option<Finding> {
    let here: Vec<_> = shared.iter().filter(|(_, (_, uids))| uids.contains(uid)).collect();
    (!here.is_empty()).then(|| {
        let n = here.len() as u64;
        let others = |uids: &BTreeSet<String>| uids.iter().filter(|u| *u != uid).cloned().collect::<Vec<_>>();
        let mut f = Finding::new(
            Severity::High,
            Code::KeySharedAcrossClusters,
            n,
            format!("{n} keys of this cluster also encrypt backups of other clusters: one leaked key opens them all"),
            here.iter().map(|(fp, (label, uids))| format!("{label} ({fp}) also in {}", others(uids).join(", "))),
        );
        f.details = here
            .iter()
            .map(|(fp, (label, uids))| json!({"key": label, "fingerprint": fp, "clusters": others(uids)}))
            .collect();
        f.remediation = Some("Give every cluster keys of its own: add a new key first, rewrite all Secrets, then remove the shared one.");
        f
    })
}
