//! Registry keys: `<prefix>/<resource path>[/<namespace>]/<name>`.
//! Built-in resources are stored under their lowercase plural without the
//! group (with a few historical path overrides); custom resources, CRDs and
//! APIServices under `<group>/<plural>` (k8s-encryption.md §8).

use serde::Serialize;

/// kube-apiserver's `--etcd-prefix` default, and OpenShift's.
pub const DEFAULT_PREFIXES: [&str; 2] = ["/registry", "/kubernetes.io"];

/// A resource in a group; the core group is `""`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GroupResource {
    pub group: String,
    pub resource: String,
}

impl GroupResource {
    pub fn new(group: &str, resource: &str) -> Self {
        GroupResource { group: group.into(), resource: resource.into() }
    }

    /// `schema.ParseGroupResource`: split at the first `.`.
    pub fn parse(s: &str) -> Self {
        match s.split_once('.') {
            Some((resource, group)) => GroupResource::new(group, resource),
            None => GroupResource::new("", s),
        }
    }
}

impl std::fmt::Display for GroupResource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.as_ref().fmt(f)
    }
}

impl GroupResource {
    /// The borrowed view that registry keys carry.
    pub fn as_ref(&self) -> ResourceRef<'_> {
        ResourceRef { group: &self.group, resource: &self.resource }
    }
}

/// A resource in a group, borrowed: what a registry key names (its strings
/// come from the key itself or from the built-in tables, so parsing a key
/// allocates nothing).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ResourceRef<'a> {
    pub group: &'a str,
    pub resource: &'a str,
}

impl PartialEq<GroupResource> for ResourceRef<'_> {
    fn eq(&self, other: &GroupResource) -> bool {
        *self == other.as_ref()
    }
}

impl std::fmt::Display for ResourceRef<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.group {
            "" => f.write_str(self.resource),
            g => write!(f, "{}.{g}", self.resource),
        }
    }
}

impl Serialize for GroupResource {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// The built-in resources of the core group (the `*.` wildcard).
pub const CORE_RESOURCES: &[&str] = &[
    "secrets",
    "configmaps",
    "pods",
    "services",
    "endpoints",
    "events",
    "namespaces",
    "nodes",
    "serviceaccounts",
    "persistentvolumes",
    "persistentvolumeclaims",
    "replicationcontrollers",
    "limitranges",
    "resourcequotas",
    "podtemplates",
];

/// Built-in resources of named groups, stored without their group in the path.
const GROUPED_RESOURCES: &[(&str, &str)] = &[
    ("deployments", "apps"),
    ("daemonsets", "apps"),
    ("replicasets", "apps"),
    ("statefulsets", "apps"),
    ("controllerrevisions", "apps"),
    ("jobs", "batch"),
    ("cronjobs", "batch"),
    ("horizontalpodautoscalers", "autoscaling"),
    ("ingresses", "networking.k8s.io"),
    ("ingressclasses", "networking.k8s.io"),
    ("networkpolicies", "networking.k8s.io"),
    ("ipaddresses", "networking.k8s.io"),
    ("servicecidrs", "networking.k8s.io"),
    ("roles", "rbac.authorization.k8s.io"),
    ("rolebindings", "rbac.authorization.k8s.io"),
    ("clusterroles", "rbac.authorization.k8s.io"),
    ("clusterrolebindings", "rbac.authorization.k8s.io"),
    ("storageclasses", "storage.k8s.io"),
    ("volumeattachments", "storage.k8s.io"),
    ("csinodes", "storage.k8s.io"),
    ("csidrivers", "storage.k8s.io"),
    ("csistoragecapacities", "storage.k8s.io"),
    ("volumeattributesclasses", "storage.k8s.io"),
    ("leases", "coordination.k8s.io"),
    ("poddisruptionbudgets", "policy"),
    ("priorityclasses", "scheduling.k8s.io"),
    ("certificatesigningrequests", "certificates.k8s.io"),
    ("mutatingwebhookconfigurations", "admissionregistration.k8s.io"),
    ("validatingwebhookconfigurations", "admissionregistration.k8s.io"),
    ("validatingadmissionpolicies", "admissionregistration.k8s.io"),
    ("validatingadmissionpolicybindings", "admissionregistration.k8s.io"),
    ("runtimeclasses", "node.k8s.io"),
    ("flowschemas", "flowcontrol.apiserver.k8s.io"),
    ("prioritylevelconfigurations", "flowcontrol.apiserver.k8s.io"),
    ("endpointslices", "discovery.k8s.io"),
    ("resourceclaims", "resource.k8s.io"),
    ("deviceclasses", "resource.k8s.io"),
    ("resourceslices", "resource.k8s.io"),
];

/// Keys under the prefix that are not API objects (never in a wildcard scope).
const NON_OBJECT_PATHS: &[&str] = &["ranges", "masterleases"];

/// A key under the etcd prefix, split into its resource, namespace and name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegistryKey<'k> {
    pub resource: ResourceRef<'k>,
    pub namespace: Option<&'k str>,
    pub name: &'k str,
}

impl<'k> RegistryKey<'k> {
    /// Parses an etcd key; `None` when it is outside `prefix` or not an object key.
    pub fn parse(key: &'k [u8], prefix: &str) -> Option<Self> {
        let rest = std::str::from_utf8(key).ok()?.strip_prefix(prefix)?.strip_prefix('/')?;
        // An object key has at most four segments (`<group>/<plural>/<ns>/<name>`,
        // `services/specs/<ns>/<name>`); more is not an object key. No allocation.
        let mut segments = [""; 5];
        let mut count = 0;
        for segment in rest.split('/') {
            *segments.get_mut(count)? = segment;
            count += 1;
        }
        let (resource, tail) = resource_of(&segments[..count])?;
        let (namespace, name) = match tail {
            [name] => (None, *name),
            [namespace, name] => (Some(*namespace), *name),
            _ => return None,
        };
        if name.is_empty() || is_apiserver_identity_lease(&resource, namespace, name) {
            return None;
        }
        Some(RegistryKey { resource, namespace, name })
    }
}

fn resource_of<'s, 'k>(segments: &'s [&'k str]) -> Option<(ResourceRef<'k>, &'s [&'k str])> {
    let (&first, rest) = segments.split_first()?;
    if NON_OBJECT_PATHS.contains(&first) {
        return None;
    }
    if first.contains('.') {
        // `<group>/<plural>/...`: custom resources, CRDs, APIServices.
        let (&plural, tail) = rest.split_first()?;
        return Some((ResourceRef { group: first, resource: plural }, tail));
    }
    let core = |resource: &'k str| ResourceRef { group: "", resource };
    Some(match (first, rest) {
        ("services", ["specs", tail @ ..]) => (core("services"), tail),
        ("services", ["endpoints", tail @ ..]) => (core("endpoints"), tail),
        ("minions", tail) => (core("nodes"), tail),
        ("controllers", tail) => (core("replicationcontrollers"), tail),
        ("ingress", tail) => (ResourceRef { group: "networking.k8s.io", resource: "ingresses" }, tail),
        (resource, tail) => {
            let group = GROUPED_RESOURCES.iter().find(|(name, _)| *name == resource).map_or("", |(_, g)| g);
            (ResourceRef { group, resource }, tail)
        }
    })
}

/// The `kube-apiserver-<hash>` leases of the apiserver identity feature are
/// bookkeeping, not user data.
fn is_apiserver_identity_lease(resource: &ResourceRef, namespace: Option<&str>, name: &str) -> bool {
    resource.resource == "leases" && namespace == Some("kube-system") && name.starts_with("apiserver-")
}

/// The prefix in use: the first default that has object keys, by a sample of keys.
pub fn detect_prefix<'a>(keys: impl IntoIterator<Item = &'a [u8]>) -> &'static str {
    elect_prefix(prefix_votes(keys))
}

/// How many of `keys` sit under each of [`DEFAULT_PREFIXES`] (votes of
/// parts of a store add up).
pub fn prefix_votes<'a>(keys: impl IntoIterator<Item = &'a [u8]>) -> [usize; DEFAULT_PREFIXES.len()] {
    let mut counts = [0usize; DEFAULT_PREFIXES.len()];
    for key in keys {
        for (i, p) in DEFAULT_PREFIXES.iter().enumerate() {
            if key.starts_with(p.as_bytes()) && key.get(p.len()) == Some(&b'/') {
                counts[i] += 1;
            }
        }
    }
    counts
}

/// The prefix with the most keys; the first on a tie (`/registry` for none).
pub fn elect_prefix(counts: [usize; DEFAULT_PREFIXES.len()]) -> &'static str {
    let best = (0..counts.len()).max_by_key(|&i| (counts[i], usize::MAX - i)).unwrap_or(0);
    DEFAULT_PREFIXES[best]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(key: &str) -> Option<(String, Option<&str>, &str)> {
        RegistryKey::parse(key.as_bytes(), "/registry").map(|k| (k.resource.to_string(), k.namespace, k.name))
    }

    #[test]
    fn builtin_paths_and_quirks() {
        assert_eq!(parse("/registry/secrets/default/db"), Some(("secrets".into(), Some("default"), "db")));
        assert_eq!(parse("/registry/services/specs/ns/web"), Some(("services".into(), Some("ns"), "web")));
        assert_eq!(
            parse("/registry/services/endpoints/ns/web"),
            Some(("endpoints".into(), Some("ns"), "web"))
        );
        assert_eq!(parse("/registry/minions/node-1"), Some(("nodes".into(), None, "node-1")));
        assert_eq!(
            parse("/registry/controllers/ns/rc"),
            Some(("replicationcontrollers".into(), Some("ns"), "rc"))
        );
        assert_eq!(parse("/registry/deployments/ns/d"), Some(("deployments.apps".into(), Some("ns"), "d")));
        assert_eq!(
            parse("/registry/namespaces/kube-system"),
            Some(("namespaces".into(), None, "kube-system"))
        );
    }

    #[test]
    fn custom_resources_and_non_objects() {
        assert_eq!(
            parse("/registry/awesome.bears.com/pandas/ns/cr3panda"),
            Some(("pandas.awesome.bears.com".into(), Some("ns"), "cr3panda"))
        );
        assert_eq!(
            parse("/registry/apiextensions.k8s.io/customresourcedefinitions/pandas.awesome.bears.com"),
            Some(("customresourcedefinitions.apiextensions.k8s.io".into(), None, "pandas.awesome.bears.com"))
        );
        assert_eq!(parse("/registry/ranges/serviceips"), None);
        assert_eq!(parse("/registry/masterleases/10.0.0.1"), None);
        assert_eq!(parse("/registry/leases/kube-system/apiserver-abc"), None);
        assert_eq!(parse("compact_rev_key"), None);
        assert_eq!(parse("/registryx/secrets/a/b"), None);
        assert_eq!(parse("/registry/secrets/a/b/c"), None);
    }

    #[test]
    fn prefix_detection() {
        let keys: [&[u8]; 3] =
            [b"/kubernetes.io/secrets/a/b", b"/kubernetes.io/pods/a/b", b"compact_rev_key"];
        assert_eq!(detect_prefix(keys), "/kubernetes.io");
        assert_eq!(detect_prefix([] as [&[u8]; 0]), "/registry");
    }
}
