//! EncryptionConfiguration files (apiserver pkg/apis/apiserver/v1), parsed
//! strictly and validated with the apiserver's rules and messages
//! (validation_encryption.go, encryptionconfig/config.go).

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use base64::engine::{general_purpose::GeneralPurpose, GeneralPurposeConfig};
use base64::Engine;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::{fingerprint, ProviderKind};
use crate::k8s::{GroupResource, ResourceRef};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("{path}: encryption provider configuration file is empty")]
    Empty { path: String },
    #[error("{path}: error while parsing file: {reason}")]
    Parse { path: String, reason: String },
    #[error("{path}: invalid configuration:\n  {}", errors.join("\n  "))]
    Invalid { path: String, errors: Vec<String> },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum KmsApi {
    V1,
    V2,
}

/// A key as configured. Its material is zeroed on drop and only ever shown
/// as a fingerprint.
#[derive(Clone)]
pub struct Key {
    pub kind: ProviderKind,
    pub name: String,
    pub secret: Zeroizing<Vec<u8>>,
    /// Where it was configured: the config file's path, or `k3s-bootstrap`.
    pub origin: String,
}

impl Key {
    pub fn fingerprint(&self) -> String {
        fingerprint(&self.secret)
    }

    pub fn same_as(&self, other: &Key) -> bool {
        self.kind == other.kind && self.name == other.name && self.secret == other.secret
    }
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Key({} {} {})", self.kind.as_str(), self.name, self.fingerprint())
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KmsProvider {
    pub api: KmsApi,
    pub name: String,
    pub endpoint: String,
    pub timeout: Duration,
}

#[derive(Clone, Debug)]
pub enum Provider {
    Keys(ProviderKind, Vec<Key>),
    Identity,
    Kms(KmsProvider),
}

impl Provider {
    /// What writes with this provider look like: `aescbc:name`, `identity`, `kms:v2:name`.
    pub fn label(&self) -> String {
        match self {
            Provider::Keys(kind, keys) => format!("{}:{}", kind.as_str(), keys[0].name),
            Provider::Identity => "identity".into(),
            Provider::Kms(k) => format!("kms:{}:{}", if k.api == KmsApi::V1 { "v1" } else { "v2" }, k.name),
        }
    }
}

#[derive(Clone, Debug)]
pub struct ResourceRule {
    /// As written: `secrets`, `deployments.apps`, `*.apps`, `*.`, `*.*`.
    pub resources: Vec<String>,
    pub providers: Vec<Provider>,
}

#[derive(Clone, Debug)]
pub struct EncryptionConfig {
    pub path: String,
    pub rules: Vec<ResourceRule>,
}

impl EncryptionConfig {
    /// This config with only the keys `keep` takes (a provider left without
    /// keys is dropped) and, unless `kms`, no KMS provider: what someone who
    /// holds only those keys could read with it.
    pub fn restricted(&self, keep: impl Fn(&Key) -> bool, kms: bool) -> EncryptionConfig {
        let providers = |providers: &[Provider]| {
            providers
                .iter()
                .filter_map(|p| match p {
                    Provider::Keys(kind, keys) => {
                        let keys: Vec<Key> = keys.iter().filter(|k| keep(k)).cloned().collect();
                        (!keys.is_empty()).then_some(Provider::Keys(*kind, keys))
                    }
                    Provider::Kms(_) if !kms => None,
                    other => Some(other.clone()),
                })
                .collect()
        };
        let rules = self
            .rules
            .iter()
            .map(|r| ResourceRule { resources: r.resources.clone(), providers: providers(&r.providers) })
            .collect();
        EncryptionConfig { path: self.path.clone(), rules }
    }

    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let name = path.display().to_string();
        // The file holds every key in base64: its bytes are zeroed when parsed.
        let text = Zeroizing::new(
            std::fs::read(path).map_err(|source| ConfigError::Io { path: name.clone(), source })?,
        );
        Self::parse(&name, &text)
    }

    pub fn parse(path: &str, text: &[u8]) -> Result<Self, ConfigError> {
        if text.iter().all(u8::is_ascii_whitespace) {
            return Err(ConfigError::Empty { path: path.into() });
        }
        let raw: RawConfig = serde_norway::from_slice(text)
            .map_err(|e| ConfigError::Parse { path: path.into(), reason: e.to_string() })?;
        let (mut rules, errors) = validate(&raw);
        if !errors.is_empty() {
            return Err(ConfigError::Invalid { path: path.into(), errors });
        }
        for rule in &mut rules {
            for provider in &mut rule.providers {
                if let Provider::Keys(_, keys) = provider {
                    keys.iter_mut().for_each(|k| k.origin = path.to_string());
                }
            }
        }
        Ok(EncryptionConfig { path: path.into(), rules })
    }

    /// The provider list the apiserver uses for `gr` (`transformerFromOverrides`):
    /// the exact resource (entries naming it again are appended), else
    /// `*.group`, else `*.*`; `None` means identity only.
    pub fn providers_for(&self, gr: ResourceRef) -> Option<Vec<&Provider>> {
        self.provider_list(gr).map(Iterator::collect)
    }

    /// [`Self::providers_for`] without collecting (it runs once per value).
    pub fn provider_list<'s, 'g>(
        &'s self,
        gr: ResourceRef<'g>,
    ) -> Option<impl Iterator<Item = &'s Provider> + Clone + use<'s, 'g>> {
        let names = move |r: &ResourceRule, tier: Tier| r.resources.iter().any(|x| tier.matches(x, gr));
        let tier = [Tier::Exact, Tier::Group, Tier::All]
            .into_iter()
            .find(|&t| self.rules.iter().any(|r| !r.providers.is_empty() && names(r, t)))?;
        Some(self.rules.iter().filter(move |r| names(r, tier)).flat_map(|r| r.providers.iter()))
    }

    /// Every resource pattern the file names, for the scan scope.
    pub fn resource_patterns(&self) -> impl Iterator<Item = &str> {
        self.rules.iter().flat_map(|r| r.resources.iter().map(String::as_str))
    }
}

/// Which of a config's resource patterns name a resource, in the order the
/// apiserver tries them: `resource.group` exactly, `*.group`, `*.*`.
#[derive(Clone, Copy)]
enum Tier {
    Exact,
    Group,
    All,
}

impl Tier {
    fn matches(self, pattern: &str, gr: ResourceRef) -> bool {
        match self {
            Tier::Exact => pattern.strip_prefix(gr.resource).is_some_and(|rest| match gr.group {
                "" => rest.is_empty(),
                group => rest.strip_prefix('.') == Some(group),
            }),
            Tier::Group => pattern.strip_prefix("*.") == Some(gr.group),
            Tier::All => pattern == "*.*",
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawConfig {
    api_version: String,
    kind: String,
    #[serde(default)]
    resources: Vec<RawRule>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    #[serde(default)]
    resources: Vec<String>,
    #[serde(default)]
    providers: Vec<RawProvider>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProvider {
    aescbc: Option<RawKeys>,
    aesgcm: Option<RawKeys>,
    secretbox: Option<RawKeys>,
    identity: Option<serde::de::IgnoredAny>,
    kms: Option<RawKms>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKeys {
    #[serde(default)]
    keys: Vec<RawKey>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKey {
    #[serde(default)]
    name: String,
    /// The base64 key as written: zeroed when the parse is done.
    #[serde(default)]
    secret: Zeroizing<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawKms {
    api_version: Option<String>,
    #[serde(default)]
    name: String,
    #[serde(default)]
    endpoint: String,
    cachesize: Option<i32>,
    timeout: Option<String>,
}

const NO_REST_RESOURCES: [&str; 3] =
    ["apiserveripinfo", "serviceipallocations", "servicenodeportallocations"];

fn required(field: &str, detail: String) -> String {
    format!("{field}: Required value: {detail}")
}

fn invalid(field: &str, value: &str, detail: String) -> String {
    format!("{field}: Invalid value: {value:?}: {detail}")
}

fn validate(raw: &RawConfig) -> (Vec<ResourceRule>, Vec<String>) {
    let mut errors = Vec::new();
    let header_ok = matches!(
        (raw.api_version.as_str(), raw.kind.as_str()),
        ("apiserver.config.k8s.io/v1", "EncryptionConfiguration") | ("v1", "EncryptionConfig")
    );
    if !header_ok {
        errors.push(format!(
            "unsupported apiVersion/kind {}/{}: expected apiserver.config.k8s.io/v1 EncryptionConfiguration or v1 EncryptionConfig",
            raw.api_version, raw.kind
        ));
    }
    if raw.resources.is_empty() {
        errors.push(required("resources", "at least one resources is required".into()));
    }
    let mut kms_v2_names = BTreeSet::new();
    let mut seen: Vec<(String, usize)> = Vec::new();
    let mut rules = Vec::new();
    for (i, rule) in raw.resources.iter().enumerate() {
        let at = format!("resources[{i}]");
        validate_resources(&at, &rule.resources, &mut errors);
        for r in &rule.resources {
            if let Some((earlier, _)) = seen.iter().find(|(e, j)| *j != i && masks(e, r)) {
                errors.push(format!("resource {r:?} is masked by earlier rule {earlier:?}"));
            }
        }
        seen.extend(rule.resources.iter().map(|r| (r.clone(), i)));
        if rule.providers.is_empty() {
            errors.push(required(&format!("{at}.providers"), "at least one provider is required".into()));
        }
        let providers = rule
            .providers
            .iter()
            .enumerate()
            .filter_map(|(j, p)| provider(&format!("{at}.providers[{j}]"), p, &mut kms_v2_names, &mut errors))
            .collect();
        rules.push(ResourceRule { resources: rule.resources.clone(), providers });
    }
    (rules, errors)
}

/// An earlier `*.group` or `*.*` hides a later rule it covers.
fn masks(earlier: &str, later: &str) -> bool {
    let (e, l) = (GroupResource::parse(earlier), GroupResource::parse(later));
    e.resource == "*" && (e.group == "*" || e.group == l.group) && earlier != later
}

fn validate_resources(at: &str, resources: &[String], errors: &mut Vec<String>) {
    if resources.is_empty() {
        errors.push(required(&format!("{at}.resources"), "at least one resource is required".into()));
    }
    let mut seen = BTreeSet::new();
    for (k, r) in resources.iter().enumerate() {
        let field = format!("{at}.resources[{k}]");
        let gr = GroupResource::parse(r);
        let detail = if r.chars().any(|c| c.is_ascii_uppercase()) {
            Some("resource name should not contain capital letters")
        } else if r == "*" {
            Some("use '*.' to encrypt all the resources from core API group or *.* to encrypt all resources")
        } else if NO_REST_RESOURCES.contains(&gr.resource.as_str()) && gr.group.is_empty() {
            Some("resources which do not have REST API/s cannot be encrypted")
        } else if gr.group == "events.k8s.io" {
            Some("'*.events.k8s.io' objects are stored using the 'events' API group in etcd. Use 'events' instead in the config file")
        } else if gr.group == "extensions" {
            Some("'extensions' group has been removed and cannot be used for encryption")
        } else if gr.group == "*" && gr.resource != "*" {
            Some("encrypting the same resource across groups is not supported")
        } else if !seen.insert(r.as_str()) {
            Some("the same resource cannot be specified multiple times")
        } else {
            None
        };
        if let Some(d) = detail {
            errors.push(invalid(&field, r, d.into()));
        }
    }
    let wild_core = resources.iter().any(|r| r == "*.");
    let wild_all = resources.iter().any(|r| r == "*.*");
    for (k, r) in resources.iter().enumerate() {
        let gr = GroupResource::parse(r);
        let overlaps = (wild_all && r != "*.*")
            || (wild_core && r != "*." && gr.group.is_empty())
            || (gr.resource != "*"
                && resources.iter().any(|o| o == &format!("*.{}", gr.group))
                && !gr.group.is_empty());
        if overlaps {
            errors.push(invalid(
                &format!("{at}.resources[{k}]"),
                r,
                "using overlapping resources such as 'secrets' and '*.' in the same resource list is not allowed as they will be masked".into(),
            ));
        }
    }
}

fn provider(
    at: &str,
    p: &RawProvider,
    kms_v2_names: &mut BTreeSet<String>,
    errors: &mut Vec<String>,
) -> Option<Provider> {
    let set = [
        p.aescbc.is_some(),
        p.aesgcm.is_some(),
        p.secretbox.is_some(),
        p.identity.is_some(),
        p.kms.is_some(),
    ];
    match set.iter().filter(|&&b| b).count() {
        0 => {
            errors.push(format!(
                "{at}: Invalid value: \"providers\": provider does not contain any of the expected providers: KMS, AESGCM, AESCBC, Secretbox, Identity"
            ));
            return None;
        }
        1 => {}
        _ => {
            errors.push(format!(
                "{at}: Invalid value: \"providers\": more than one provider specified in a single element, should split into different list elements"
            ));
            return None;
        }
    }
    let keyed = [
        (ProviderKind::Aescbc, &p.aescbc),
        (ProviderKind::Aesgcm, &p.aesgcm),
        (ProviderKind::Secretbox, &p.secretbox),
    ];
    for (kind, keys) in keyed {
        if let Some(keys) = keys {
            return keys_provider(&format!("{at}.{}", kind.as_str()), kind, keys, errors);
        }
    }
    if let Some(kms) = &p.kms {
        return kms_provider(&format!("{at}.kms"), kms, kms_v2_names, errors);
    }
    Some(Provider::Identity)
}

fn keys_provider(at: &str, kind: ProviderKind, raw: &RawKeys, errors: &mut Vec<String>) -> Option<Provider> {
    if raw.keys.is_empty() {
        errors.push(required(&format!("{at}.keys"), "at least one keys is required".into()));
        return None;
    }
    let sizes: &[usize] = if kind == ProviderKind::Secretbox { &[32] } else { &[16, 24, 32] };
    let before = errors.len();
    let mut keys = Vec::new();
    for (k, key) in raw.keys.iter().enumerate() {
        let field = format!("{at}.keys[{k}]");
        if key.name.is_empty() {
            errors.push(required(&format!("{field}.name"), "name is a mandatory field for a key".into()));
        }
        if key.secret.is_empty() {
            errors.push(required(&format!("{field}.secret"), "secret is a mandatory field for a key".into()));
            continue;
        }
        let secret_field = format!("{field}.secret");
        match decode_secret(&key.secret) {
            None => errors.push(invalid(&secret_field, "REDACTED", "secrets must be base64 encoded".into())),
            Some(secret) if !sizes.contains(&secret.len()) => errors.push(invalid(
                &secret_field,
                "REDACTED",
                format!(
                    "secret is not of the expected length, got {}, expected one of [{}]{}",
                    secret.len(),
                    sizes.iter().map(usize::to_string).collect::<Vec<_>>().join(" "),
                    if super::hygiene::KnownKeys::default().contains(&secret) {
                        " (it is an example key published in the Kubernetes documentation, which no provider accepts)"
                    } else {
                        ""
                    }
                ),
            )),
            Some(secret) => keys.push(Key { kind, name: key.name.clone(), secret, origin: String::new() }),
        }
    }
    (errors.len() == before).then_some(Provider::Keys(kind, keys))
}

/// Go's `base64.StdEncoding.DecodeString`: padding required, CR/LF ignored,
/// non-zero trailing bits accepted.
fn decode_secret(text: &str) -> Option<Zeroizing<Vec<u8>>> {
    const GO_STD: GeneralPurpose = GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        GeneralPurposeConfig::new().with_decode_allow_trailing_bits(true),
    );
    let clean: Zeroizing<String> =
        Zeroizing::new(text.chars().filter(|c| *c != '\r' && *c != '\n').collect());
    GO_STD.decode(clean.as_bytes()).ok().map(Zeroizing::new)
}

fn kms_provider(
    at: &str,
    raw: &RawKms,
    v2_names: &mut BTreeSet<String>,
    errors: &mut Vec<String>,
) -> Option<Provider> {
    let before = errors.len();
    let api = match raw.api_version.as_deref().unwrap_or("v1") {
        "v1" => KmsApi::V1,
        "v2" => KmsApi::V2,
        other => {
            errors.push(invalid(
                &format!("{at}.apiVersion"),
                other,
                format!("unsupported apiVersion {other} for KMS provider, only v1 and v2 are supported"),
            ));
            KmsApi::V1
        }
    };
    if raw.name.is_empty() {
        errors.push(required(&format!("{at}.name"), "name is a mandatory field for a provider".into()));
    } else if api == KmsApi::V2 {
        if raw.name.contains(':') {
            errors.push(invalid(
                &format!("{at}.name"),
                &raw.name,
                format!("invalid KMS provider name {}, must not contain ':'", raw.name),
            ));
        } else if !v2_names.insert(raw.name.clone()) {
            errors.push(invalid(
                &format!("{at}.name"),
                &raw.name,
                format!("duplicate KMS provider name {}, names must be unique", raw.name),
            ));
        }
    }
    if raw.endpoint.is_empty() {
        errors.push(required(
            &format!("{at}.endpoint"),
            "endpoint is a mandatory field for a kms provider".into(),
        ));
    } else if let Some((scheme, _)) = raw.endpoint.split_once("://") {
        if scheme != "unix" {
            errors.push(invalid(
                &format!("{at}.endpoint"),
                &raw.endpoint,
                format!("unsupported scheme {scheme:?} for KMS provider, only unix is supported"),
            ));
        }
    } else {
        errors.push(invalid(
            &format!("{at}.endpoint"),
            &raw.endpoint,
            "invalid endpoint for kms provider, error: missing scheme".into(),
        ));
    }
    match (api, raw.cachesize) {
        (KmsApi::V2, Some(_)) => errors.push(invalid(
            &format!("{at}.cachesize"),
            &raw.cachesize.unwrap().to_string(),
            "cachesize is not supported in v2".into(),
        )),
        (KmsApi::V1, Some(0)) => errors.push(invalid(
            &format!("{at}.cachesize"),
            "0",
            "cachesize should be a positive value, or negative to disable".into(),
        )),
        _ => {}
    }
    let timeout = match raw.timeout.as_deref().map(parse_duration) {
        None => Duration::from_secs(3),
        Some(Some(d)) if !d.is_zero() => d,
        Some(_) => {
            errors.push(invalid(
                &format!("{at}.timeout"),
                raw.timeout.as_deref().unwrap_or(""),
                "timeout should be a positive value".into(),
            ));
            Duration::ZERO
        }
    };
    let endpoint = raw.endpoint.clone();
    (errors.len() == before)
        .then(|| Provider::Kms(KmsProvider { api, name: raw.name.clone(), endpoint, timeout }))
}

/// A Go duration such as `3s`, `500ms`, `1m30s`.
fn parse_duration(s: &str) -> Option<Duration> {
    let mut total = 0f64;
    let mut rest = s.trim();
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let num_end = rest.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
        let value: f64 = rest[..num_end].parse().ok()?;
        rest = &rest[num_end..];
        let unit_end = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let scale = match &rest[..unit_end] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        total += value * scale;
        rest = &rest[unit_end..];
    }
    // A huge value is no timeout at all: refused, not a panic.
    Duration::try_from_secs_f64(total).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors_of(yaml: &str) -> Vec<String> {
        match EncryptionConfig::parse("t.yaml", yaml.as_bytes()) {
            Err(ConfigError::Invalid { errors, .. }) => errors,
            Err(e) => vec![e.to_string()],
            Ok(_) => vec![],
        }
    }

    const HEAD: &str = "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\n";

    #[test]
    fn valid_config_and_lookup() {
        let yaml = format!(
            "{HEAD}resources:\n- resources: [secrets]\n  providers:\n  - aescbc:\n      keys:\n      - name: 'k:1'\n        secret: c2VjcmV0IGlzIHNlY3VyZQ==\n  - identity: {{}}\n- resources: ['*.apps']\n  providers:\n  - secretbox:\n      keys:\n      - name: sb\n        secret: YWJjZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXoxMjM0NTY=\n"
        );
        let cfg = EncryptionConfig::parse("t.yaml", yaml.as_bytes()).unwrap();
        let list = cfg.providers_for(GroupResource::new("", "secrets").as_ref()).unwrap();
        assert_eq!(list.iter().map(|p| p.label()).collect::<Vec<_>>(), ["aescbc:k:1", "identity"]);
        let apps = cfg.providers_for(GroupResource::new("apps", "deployments").as_ref()).unwrap();
        assert_eq!(apps[0].label(), "secretbox:sb");
        assert!(cfg.providers_for(GroupResource::new("", "configmaps").as_ref()).is_none());
    }

    #[test]
    fn apiserver_messages() {
        let bad_len = format!("{HEAD}resources:\n- resources: [secrets]\n  providers:\n  - aesgcm:\n      keys:\n      - name: k\n        secret: YWJj\n");
        assert_eq!(
            errors_of(&bad_len),
            ["resources[0].providers[0].aesgcm.keys[0].secret: Invalid value: \"REDACTED\": secret is not of the expected length, got 3, expected one of [16 24 32]"]
        );
        // The docs' 28-byte example key: refused, and said to be the published one.
        let docs = bad_len.replace("YWJj", "c2VjcmV0IGlzIHNlY3VyZSwgb3IgaXMgaXQ/Cg==");
        assert!(errors_of(&docs)[0].ends_with(
            "got 28, expected one of [16 24 32] (it is an example key published in the Kubernetes documentation, which no provider accepts)"
        ));
        let not_b64 = bad_len.replace("YWJj", "YW%j");
        assert!(errors_of(&not_b64)[0].ends_with("secrets must be base64 encoded"));
        let two = format!("{HEAD}resources:\n- resources: [secrets]\n  providers:\n  - identity: {{}}\n    aescbc: {{keys: [{{name: k, secret: YWJj}}]}}\n");
        assert!(errors_of(&two)[0].contains("more than one provider specified in a single element"));
        let star = format!("{HEAD}resources:\n- resources: ['*', 'Secrets', 'secrets', '*.']\n  providers:\n  - identity: {{}}\n");
        let errs = errors_of(&star).join("\n");
        assert!(errs.contains("use '*.' to encrypt all the resources"));
        assert!(errs.contains("should not contain capital letters"));
        assert!(errs.contains("overlapping resources"));
        let kms = format!("{HEAD}resources:\n- resources: [secrets]\n  providers:\n  - kms: {{apiVersion: v2, name: 'a:b', endpoint: 'tcp://x', cachesize: 5}}\n");
        let errs = errors_of(&kms).join("\n");
        assert!(errs.contains("must not contain ':'"));
        assert!(errs.contains("only unix is supported"));
        assert!(errs.contains("cachesize is not supported in v2"));
        let typo = format!("{HEAD}resources:\n- resources: [secrets]\n  provider:\n  - identity: {{}}\n");
        assert!(errors_of(&typo)[0].contains("unknown field"));
        assert!(errors_of("   \n")[0].contains("is empty"));
    }

    #[test]
    fn go_base64_rules() {
        assert_eq!(decode_secret("YWJj\r\nZA==").unwrap().as_slice(), b"abcd");
        assert!(decode_secret("YWJjZA").is_none(), "padding is required");
        assert!(decode_secret("YWJjZB==").is_some(), "non-zero trailing bits are accepted");
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("3s"), Some(Duration::from_secs(3)));
        assert_eq!(parse_duration("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("3"), None);
        // Found by review: a huge timeout made Duration::from_secs_f64 panic.
        assert_eq!(parse_duration(&format!("{}h", "9".repeat(400))), None);
        assert_eq!(parse_duration("99999999999999999999h"), None);
    }
}
