//! Which cluster a backup belongs to, from what the backup itself holds:
//! the UID of the `kube-system` Namespace (what k3s reports as
//! `K3s-Cluster-Id`), the Kubernetes version kubeadm recorded, the Node
//! names, and etcd's own member list. A field is `null` when the backup does
//! not say; nothing is guessed.

use serde::Serialize;

use crate::bolt::Layout;
use crate::k8s::decode_object;

/// `backups[].cluster`.
#[derive(Debug, Default, Serialize)]
pub struct Cluster {
    pub uid: Option<String>,
    pub kubernetes_version: Option<String>,
    pub nodes: Vec<String>,
    /// `null` when the backup has no `members` bucket (a delta, a range read).
    pub etcd_members: Option<Vec<Member>>,
    /// In hex, from the WAL's Metadata record: data dirs only.
    pub etcd_cluster_id: Option<String>,
}

/// `backups[].taken_at`: when the backup was taken, as the objects in it say.
#[derive(Debug, Serialize)]
pub struct TakenAt {
    /// RFC 3339.
    pub estimate: String,
    #[serde(skip)]
    pub unix: i64,
    /// `lease-renew-time`, else `event-time`.
    pub source: &'static str,
    /// How far before the snapshot the newest time can be: kubelets renew
    /// every 10 s, leader-election leases every 2 s, Events live an hour.
    pub uncertainty_seconds: u64,
}

/// The newest `renewTime` of the Leases in kube-node-lease and kube-system
/// (`leases` yields etcd key and newest value); without Leases, the newest
/// time of an Event (`events`): every Event in a backup was written less
/// than its one-hour TTL before it was taken.
pub fn taken_at<'a>(
    prefix: &str,
    leases: impl Iterator<Item = (&'a [u8], &'a [u8])>,
    events: impl Iterator<Item = (&'a [u8], &'a [u8])>,
) -> Option<TakenAt> {
    let system = format!("{prefix}/leases/kube-system/");
    let lease = leases
        .filter_map(|(key, value)| {
            Some((crate::k8s::lease_renew_seconds(value)?, key.starts_with(system.as_bytes())))
        })
        .max()
        .map(|(seconds, leader_election)| {
            (seconds, "lease-renew-time", if leader_election { 2 } else { 10 })
        });
    let (unix, source, uncertainty_seconds) = lease.or_else(|| {
        let newest = events.filter_map(|(_, value)| crate::k8s::event_seconds(value)).max()?;
        Some((newest, "event-time", EVENT_TTL_SECONDS))
    })?;
    Some(TakenAt {
        unix,
        estimate: crate::time::rfc3339(u64::try_from(unix).ok()?),
        source,
        uncertainty_seconds,
    })
}

/// kube-apiserver's `--event-ttl` default.
const EVENT_TTL_SECONDS: u64 = 3600;

#[derive(Debug, Serialize, serde::Deserialize)]
pub struct Member {
    /// In hex, as `etcdctl member list` shows it.
    #[serde(serialize_with = "hex_id")]
    pub id: u64,
    #[serde(default)]
    pub name: String,
    #[serde(rename(deserialize = "peerURLs"), default)]
    pub peer_urls: Vec<String>,
}

fn hex_id<S: serde::Serializer>(id: &u64, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&format_args!("{id:x}"))
}

/// Reads the identity from the live value of each key (`live` yields the
/// etcd key and value of every key's newest revision), and the members
/// bucket when there are pages.
pub fn identify<'a>(
    prefix: &str,
    live: impl Iterator<Item = (&'a [u8], &'a [u8])>,
    layout: Option<&Layout>,
) -> Cluster {
    let mut cluster = Cluster::default();
    let namespace = format!("{prefix}/namespaces/kube-system");
    let kubeadm = format!("{prefix}/configmaps/kube-system/kubeadm-config");
    let nodes = format!("{prefix}/minions/");
    let (mut kubeadm_version, mut kubelet_version) = (None, None::<String>);
    for (key, value) in live {
        if key == namespace.as_bytes() {
            cluster.uid = decode_object(value).1.and_then(|o| o.uid);
        } else if key == kubeadm.as_bytes() {
            kubeadm_version = version_in(value, b"kubernetesVersion: ");
        } else if let Some(name) = key.strip_prefix(nodes.as_bytes()) {
            cluster.nodes.push(String::from_utf8_lossy(name).into_owned());
            // The newest version a kubelet reports (JSON-stored Nodes only).
            if let Some(v) = version_in(value, b"\"kubeletVersion\":\"") {
                if kubelet_version.as_deref().is_none_or(|cur| newer(&v, cur)) {
                    kubelet_version = Some(v);
                }
            }
        }
    }
    // What kubeadm recorded wins over what kubelets report.
    cluster.kubernetes_version = kubeadm_version.or(kubelet_version);
    cluster.nodes.sort();
    cluster.etcd_members = layout.and_then(|l| l.bucket(b"members")).map(|bucket| {
        bucket
            .leaves
            .iter()
            .flat_map(|leaf| leaf.page.leaf_items().map_while(Result::ok))
            .filter_map(|item| serde_json::from_slice::<Member>(item.value).ok())
            .collect()
    });
    cluster
}

/// The version after `marker`: `v` and digits, dots, dashes, `+`.
fn version_in(value: &[u8], marker: &[u8]) -> Option<String> {
    let at = value.windows(marker.len()).position(|w| w == marker)? + marker.len();
    let rest = value.get(at..)?;
    let rest = rest.strip_prefix(b"\"").unwrap_or(rest);
    let end =
        rest.iter().position(|b| !(b.is_ascii_alphanumeric() || b".-+".contains(b))).unwrap_or(rest.len());
    let v = std::str::from_utf8(&rest[..end]).ok()?;
    (v.starts_with('v') && v.len() > 1).then(|| v.to_string())
}

/// `v1.30.2` is newer than `v1.29.10`: compare numeric parts.
fn newer(a: &str, b: &str) -> bool {
    let parts = |v: &str| -> Vec<u64> {
        v.trim_start_matches('v').split(['.', '-', '+']).map_while(|p| p.parse().ok()).collect()
    };
    parts(a) > parts(b)
}

/// How far apart `taken_at` and another clock may be before they disagree.
const DISAGREE_SECONDS: i64 = 600;

/// `taken-at-disagrees` (low): the time a k3s snapshot's name says, or the
/// object's Last-Modified, is more than 10 minutes from `taken_at`: a
/// renamed or copied file, a stale Lease, or an upload long after the fact.
pub fn check_taken_at(report: &mut super::ScanReport, last_modified: Option<&str>) {
    let Some(taken) = &report.taken_at else { return };
    let named = report
        .k3s
        .as_ref()
        .and_then(|k| k.snapshot.as_ref())
        .map(|s| ("the k3s snapshot name", s.unix_time as i64));
    let uploaded = last_modified
        .and_then(|t| crate::time::parse_rfc3339(t).ok())
        .map(|t| ("the object's Last-Modified", t));
    let apart: Vec<(&str, i64)> = named
        .into_iter()
        .chain(uploaded)
        .filter(|(_, t)| (t - taken.unix).abs() > DISAGREE_SECONDS)
        .collect();
    if apart.is_empty() {
        return;
    }
    let n = apart.len() as u64;
    let says = |(what, t): &(&str, i64)| {
        format!(
            "{what} says {} ({} min off)",
            crate::time::rfc3339((*t).max(0) as u64),
            (t - taken.unix).abs() / 60
        )
    };
    let mut f = super::Finding::new(
        super::Severity::Low,
        super::Code::TakenAtDisagrees,
        n,
        format!(
            "taken_at ({}, from {}) disagrees with {}",
            taken.estimate,
            taken.source,
            apart.iter().map(says).collect::<Vec<_>>().join(" and ")
        ),
        apart.iter().map(says),
    );
    f.remediation = Some("Check which clock is right before trusting this backup's age: a renamed or re-uploaded file keeps its old content.");
    report.findings.push(f);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_from_kubeadm_and_kubelets() {
        let kubeadm = b"k8s\0...ClusterConfiguration: |\n  kubernetesVersion: v1.30.2\n  networking: ...";
        assert_eq!(version_in(kubeadm, b"kubernetesVersion: ").as_deref(), Some("v1.30.2"));
        let node = br#"{"status":{"nodeInfo":{"kubeletVersion":"v1.29.10+k3s1"}}}"#;
        assert_eq!(version_in(node, b"\"kubeletVersion\":\"").as_deref(), Some("v1.29.10+k3s1"));
        assert!(newer("v1.30.2", "v1.29.10") && !newer("v1.29.9", "v1.29.10"));
        let live = [
            (&b"/registry/minions/node-a"[..], &node[..]),
            (&b"/registry/minions/node-b"[..], &br#"{"kubeletVersion":"v1.30.1"}"#[..]),
        ];
        let c = identify("/registry", live.into_iter(), None);
        assert_eq!(c.nodes, ["node-a", "node-b"]);
        assert_eq!(c.kubernetes_version.as_deref(), Some("v1.30.1"));
        assert!(c.uid.is_none() && c.etcd_members.is_none());
    }
}
