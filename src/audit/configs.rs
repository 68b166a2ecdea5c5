//! `etcd-audit configs`: compare the EncryptionConfiguration of several
//! control-plane nodes. The failure that matters: one API server writes with
//! a key (or in plaintext) that another cannot read.

use std::collections::BTreeSet;

use serde::Serialize;

use crate::encryption::{EncryptionConfig, Provider};
use crate::k8s::GroupResource;

#[derive(Debug, Serialize)]
pub struct Comparison {
    pub configs: Vec<ConfigSummary>,
    pub differences: Vec<Difference>,
    /// Key hygiene and config lint (published, weak and reused keys,
    /// identity first, KMS v1, …), as in every scanned backup's findings.
    pub findings: Vec<super::Finding>,
}

#[derive(Debug, Serialize)]
pub struct ConfigSummary {
    pub path: String,
    pub resources: Vec<ResourceProviders>,
}

#[derive(Debug, Serialize)]
pub struct ResourceProviders {
    pub resource: String,
    /// Provider labels in order (`aescbc:key1`, `identity`, `kms:v2:vault`); the first writes.
    pub providers: Vec<String>,
    pub keys: Vec<KeySummary>,
}

#[derive(Debug, Serialize)]
pub struct KeySummary {
    pub provider: String,
    pub name: String,
    pub fingerprint: String,
}

#[derive(Debug, Serialize)]
pub struct Difference {
    pub resource: String,
    /// True when some API server could not read what another writes.
    pub breaks_reads: bool,
    pub message: String,
}

pub fn compare(configs: &[EncryptionConfig]) -> Comparison {
    let patterns: BTreeSet<&str> = configs.iter().flat_map(|c| c.resource_patterns()).collect();
    let mut differences = Vec::new();
    for pattern in &patterns {
        let gr = GroupResource::parse(pattern);
        let lists: Vec<Option<Vec<&Provider>>> =
            configs.iter().map(|c| c.providers_for(gr.as_ref())).collect();
        let labels: Vec<Vec<String>> = lists.iter().map(|l| labels(l.as_deref())).collect();
        if labels.iter().any(|l| l != &labels[0]) {
            let shown: Vec<String> =
                configs.iter().zip(&labels).map(|(c, l)| format!("{}: [{}]", c.path, l.join(", "))).collect();
            differences.push(Difference {
                resource: pattern.to_string(),
                breaks_reads: false,
                message: format!("provider lists differ: {}", shown.join("; ")),
            });
        }
        for (w, writer) in lists.iter().enumerate() {
            let write = writer.as_ref().and_then(|l| l.first().copied()).unwrap_or(&Provider::Identity);
            for (r, reader) in lists.iter().enumerate() {
                if w != r && !can_read(reader.as_deref(), write) {
                    differences.push(Difference {
                        resource: pattern.to_string(),
                        breaks_reads: true,
                        message: format!(
                            "{} cannot read what {} writes ({})",
                            configs[r].path,
                            configs[w].path,
                            describe(write)
                        ),
                    });
                }
            }
        }
    }
    let configs = configs.iter().map(summary).collect();
    Comparison { configs, differences, findings: vec![] }
}

/// The read-breaking differences, one line each (the `configs-disagree` finding).
pub fn breaking_differences(configs: &[EncryptionConfig]) -> Vec<String> {
    if configs.len() < 2 {
        return vec![];
    }
    compare(configs)
        .differences
        .into_iter()
        .filter(|d| d.breaks_reads)
        .map(|d| format!("{}: {}", d.resource, d.message))
        .collect()
}

fn labels(list: Option<&[&Provider]>) -> Vec<String> {
    list.map_or_else(|| vec!["identity (default)".into()], |l| l.iter().map(|p| p.label()).collect())
}

fn describe(p: &Provider) -> String {
    match p {
        Provider::Keys(kind, keys) => {
            format!("{} key {:?} {}", kind.as_str(), keys[0].name, keys[0].fingerprint())
        }
        other => other.label(),
    }
}

/// Whether a server with `reader` (None = identity only) reads values written by `write`.
fn can_read(reader: Option<&[&Provider]>, write: &Provider) -> bool {
    let default = [&Provider::Identity];
    let reader = reader.unwrap_or(&default);
    reader.iter().any(|p| match (p, write) {
        (Provider::Identity, Provider::Identity) => true,
        (Provider::Keys(rk, rkeys), Provider::Keys(wk, wkeys)) => {
            rk == wk && rkeys.iter().any(|k| k.same_as(&wkeys[0]))
        }
        (Provider::Kms(a), Provider::Kms(b)) => a.name == b.name && a.api == b.api,
        _ => false,
    })
}

fn summary(c: &EncryptionConfig) -> ConfigSummary {
    let resources = c
        .rules
        .iter()
        .flat_map(|rule| {
            rule.resources.iter().map(|r| ResourceProviders {
                resource: r.clone(),
                providers: rule.providers.iter().map(Provider::label).collect(),
                keys: rule
                    .providers
                    .iter()
                    .flat_map(|p| match p {
                        Provider::Keys(_, keys) => keys.as_slice(),
                        _ => &[],
                    })
                    .map(|k| KeySummary {
                        provider: k.kind.as_str().into(),
                        name: k.name.clone(),
                        fingerprint: k.fingerprint(),
                    })
                    .collect(),
            })
        })
        .collect();
    ConfigSummary { path: c.path.clone(), resources }
}
