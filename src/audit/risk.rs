//! How much a leaked object is worth to whoever holds it: a rank and the
//! rule that gave it. The rules are stated in the README ("Breach impact");
//! they read the Secret's type, its namespace and its data key names, never
//! a value.

use serde::Serialize;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Risk {
    Critical,
    High,
    Medium,
    Low,
}

impl Risk {
    pub fn as_str(self) -> &'static str {
        match self {
            Risk::Critical => "critical",
            Risk::High => "high",
            Risk::Medium => "medium",
            Risk::Low => "low",
        }
    }
}

/// A rank and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Rank {
    pub risk: Risk,
    pub reason: String,
}

fn rank(risk: Risk, reason: impl Into<String>) -> Rank {
    Rank { risk, reason: reason.into() }
}

const SA_TOKEN: &str = "kubernetes.io/service-account-token";
const REGISTRY_TYPES: [&str; 2] = ["kubernetes.io/dockerconfigjson", "kubernetes.io/dockercfg"];
const LOGIN_TYPES: [&str; 2] = ["kubernetes.io/basic-auth", "kubernetes.io/ssh-auth"];

/// A Secret, from its namespace, type and data key names.
pub fn of_secret<'a>(
    namespace: Option<&str>,
    secret_type: Option<&str>,
    data_keys: impl IntoIterator<Item = &'a String> + Clone,
) -> Rank {
    let kube_system = namespace == Some("kube-system");
    match secret_type {
        Some(SA_TOKEN) if kube_system => {
            return rank(Risk::Critical, "service-account token in kube-system (controllers' credentials)")
        }
        Some("bootstrap.kubernetes.io/token") => {
            return rank(Risk::Critical, "bootstrap token: joins nodes to the cluster")
        }
        _ => {}
    }
    if let Some(rank) = of_data_keys(data_keys.clone()).filter(|r| r.risk == Risk::Critical) {
        return rank;
    }
    match secret_type {
        Some(SA_TOKEN) => return rank(Risk::High, "service-account token"),
        Some("kubernetes.io/tls") => return rank(Risk::High, "TLS private key"),
        Some(t) if REGISTRY_TYPES.contains(&t) => return rank(Risk::High, "container registry credentials"),
        Some(t) if LOGIN_TYPES.contains(&t) => return rank(Risk::High, format!("login credentials ({t})")),
        _ => {}
    }
    if let Some(rank) = of_data_keys(data_keys) {
        return rank;
    }
    match secret_type {
        Some(t) if t.starts_with("helm.sh/release") => {
            rank(Risk::Medium, "Helm release: chart values often hold credentials")
        }
        _ if kube_system => rank(Risk::Medium, "Secret in kube-system"),
        _ => rank(Risk::Low, "no credential-like type or data key name"),
    }
}

/// Data key names alone (what ranks a ConfigMap): `None` when no name
/// looks like a credential.
pub fn of_data_keys<'a>(data_keys: impl IntoIterator<Item = &'a String>) -> Option<Rank> {
    let mut best: Option<Rank> = None;
    for key in data_keys {
        let found = match credential(key) {
            Some(Credential::Cloud) => {
                rank(Risk::Critical, format!("data key {key:?} names a cloud credential"))
            }
            Some(Credential::PrivateKey) => rank(Risk::High, format!("data key {key:?} names a private key")),
            Some(Credential::Registry) => rank(Risk::High, "container registry credentials"),
            Some(Credential::Secret) => rank(Risk::High, format!("data key {key:?} names a credential")),
            None => continue,
        };
        if best.as_ref().is_none_or(|b| found.risk < b.risk) {
            best = Some(found);
        }
    }
    best
}

enum Credential {
    Cloud,
    PrivateKey,
    Registry,
    Secret,
}

/// Words of a data key name that say it holds a credential.
const SECRET_WORDS: [&str; 12] = [
    "password",
    "passwd",
    "pwd",
    "pass",
    "secret",
    "token",
    "apikey",
    "credential",
    "credentials",
    "auth",
    "dsn",
    "passphrase",
];

/// Parts of a data key name that say it holds a credential.
const SECRET_PARTS: [&str; 5] =
    ["api_key", "access_key", "connection_string", "database_url", "client_secret"];

/// Cloud provider credentials (a key to the whole account).
const CLOUD_PARTS: [&str; 5] = [
    "aws_secret_access_key",
    "azure_client_secret",
    "azure_storage_key",
    "google_application_credentials",
    "gcp_service_account",
];
const CLOUD_NAMES: [&str; 3] = ["key_json", "credentials_json", "service_account_json"];

fn credential(name: &str) -> Option<Credential> {
    let norm: String = name
        .trim_start_matches('.')
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '_' })
        .collect();
    if CLOUD_PARTS.iter().any(|p| norm.contains(p)) || CLOUD_NAMES.contains(&norm.as_str()) {
        return Some(Credential::Cloud);
    }
    if norm == "dockerconfigjson" || norm == "dockercfg" {
        return Some(Credential::Registry);
    }
    let secretish = SECRET_PARTS.iter().any(|p| norm.contains(p));
    let public = norm.contains("public") || norm.contains("cert") || norm.starts_with("ca_");
    let private =
        ["private_key", "privatekey", "id_rsa", "id_ecdsa", "id_ed25519"].iter().any(|p| norm.contains(p))
            || ((norm.ends_with("_key") || norm.ends_with("_pem")) && !secretish && !public);
    if private {
        return Some(Credential::PrivateKey);
    }
    let words = norm.split('_').any(|w| SECRET_WORDS.contains(&w));
    (words || secretish).then_some(Credential::Secret)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(ns: &str, t: &str, keys: &[&str]) -> Risk {
        let keys: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
        of_secret(Some(ns), Some(t), &keys).risk
    }

    #[test]
    fn ranks() {
        assert_eq!(secret("kube-system", SA_TOKEN, &["token", "ca.crt", "namespace"]), Risk::Critical);
        assert_eq!(secret("apps", SA_TOKEN, &["token"]), Risk::High);
        assert_eq!(secret("kube-system", "bootstrap.kubernetes.io/token", &["token-id"]), Risk::Critical);
        assert_eq!(secret("default", "Opaque", &["AWS_SECRET_ACCESS_KEY"]), Risk::Critical);
        assert_eq!(secret("default", "Opaque", &["key.json"]), Risk::Critical);
        assert_eq!(secret("web", "kubernetes.io/tls", &["tls.crt", "tls.key"]), Risk::High);
        assert_eq!(secret("default", "Opaque", &["tls.key"]), Risk::High);
        assert_eq!(secret("default", "Opaque", &["ssh-privatekey"]), Risk::High);
        assert_eq!(secret("d", "kubernetes.io/dockerconfigjson", &[".dockerconfigjson"]), Risk::High);
        assert_eq!(secret("prod", "Opaque", &["username", "password"]), Risk::High);
        assert_eq!(secret("prod", "Opaque", &["DB_PASS"]), Risk::High);
        assert_eq!(secret("prod", "Opaque", &["stripe-api-key"]), Risk::High);
        assert_eq!(secret("prod", "helm.sh/release.v1", &["release"]), Risk::Medium);
        assert_eq!(secret("kube-system", "Opaque", &["config"]), Risk::Medium);
        assert_eq!(secret("default", "Opaque", &["config.yaml"]), Risk::Low);
        assert_eq!(secret("default", "Opaque", &["ca.crt", "public.key", "ca.pem"]), Risk::Low);
        assert_eq!(of_secret(None, None, &Vec::<String>::new()).risk, Risk::Low);
    }

    #[test]
    fn config_maps_rank_by_data_key_names_only() {
        let keys = |k: &[&str]| k.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(of_data_keys(&keys(&["DB_HOST", "DB_PASSWORD"])).map(|r| r.risk), Some(Risk::High));
        assert_eq!(of_data_keys(&keys(&["index.html", "nginx.conf"])), None);
        let cloud = of_data_keys(&keys(&["password", "aws_secret_access_key"])).unwrap();
        assert_eq!((cloud.risk, cloud.reason.contains("aws_secret_access_key")), (Risk::Critical, true));
    }
}
