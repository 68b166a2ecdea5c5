//! Key pairing: which keys a backup's values need, and whether the supplied
//! configs hold them. A DR runbook's question: can this backup be restored
//! with these keys, and which old key must not be deleted yet?

use std::collections::BTreeMap;

use serde::Serialize;

use super::record::EntryRecord;
use super::verdict::{Class, Judge};
use crate::encryption::{KmsApi, PluginReport, Provider, ProviderKind};

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct KeyUse {
    pub provider: ProviderKind,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kms_api: Option<KmsApi>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    /// Live entries encrypted under this key.
    pub entries: u64,
    /// Of those, how many decrypted.
    pub decryptable: u64,
    /// A supplied config holds a key (or reachable plugin) of this name.
    pub available: bool,
    /// kube-apiserver writes new values with it (first provider, first key).
    pub write_key: bool,
    pub fingerprint: Option<String>,
    /// Where the key came from: the config file's path, or `k3s-bootstrap`.
    pub origin: Option<String>,
    /// KMS rows: the plugin asked for this provider (endpoint, Status, errors, calls).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plugin: Option<PluginReport>,
}

type Slot = (ProviderKind, String, Option<KmsApi>, Option<String>);

pub fn pairing(entries: &[EntryRecord], judge: &Judge) -> Vec<KeyUse> {
    let mut uses: BTreeMap<Slot, KeyUse> = BTreeMap::new();
    for e in entries {
        let v = &e.verdict;
        let (Some(provider), Some(name)) = (v.provider, v.key_name.clone()) else {
            continue;
        };
        if v.class == Class::Malformed {
            continue;
        }
        let slot = (provider, name.clone(), v.kms_api, v.key_id.clone());
        let row = uses.entry(slot).or_insert_with(|| {
            let configured = judge.keyring.keys().iter().find(|k| k.kind == provider && k.name == name);
            KeyUse {
                provider,
                available: match v.kms_api {
                    Some(api) => kms_plugin(judge, api, &name)
                        .is_some_and(|p| judge.keyring.kms_plugins().available(p)),
                    None => judge.keyring.has(provider, &name),
                },
                write_key: match v.kms_api {
                    Some(api) => is_kms_write_key(judge, api, &name, v.key_id.as_deref()),
                    None => is_write_key(judge, provider, &name),
                },
                plugin: v
                    .kms_api
                    .and_then(|api| kms_plugin(judge, api, &name))
                    .map(|p| judge.keyring.kms_plugins().report(p)),
                fingerprint: configured.map(|k| k.fingerprint()),
                origin: configured.map(|k| k.origin.clone()),
                name,
                kms_api: v.kms_api,
                key_id: v.key_id.clone(),
                entries: 0,
                decryptable: 0,
            }
        });
        row.entries += 1;
        if v.class == Class::Decryptable {
            row.decryptable += 1;
        }
        if let Some(key) = v.key {
            // Of several keys with one name, show the one that opened the values.
            row.fingerprint = Some(judge.keyring.key(key).fingerprint());
            row.origin = Some(judge.keyring.key(key).origin.clone());
        }
    }
    uses.into_values().collect()
}

fn kms_plugin<'j>(judge: &'j Judge, api: KmsApi, name: &str) -> Option<&'j crate::encryption::kms::Plugin> {
    judge.keyring.kms_plugins().find(api, name)
}

/// The first provider of some resource list is this KMS provider, and for v2
/// the key ID is the one the plugin's Status names (when it was reached).
fn is_kms_write_key(judge: &Judge, api: KmsApi, name: &str, key_id: Option<&str>) -> bool {
    let Some(config) = judge.configs.first() else {
        return false;
    };
    let first = config
        .rules
        .iter()
        .filter_map(|r| r.providers.first())
        .any(|p| matches!(p, Provider::Kms(k) if k.api == api && k.name == name));
    // Never connects: a row exists only for values that already asked the plugin.
    let plugins = judge.keyring.kms_plugins();
    let current = match kms_plugin(judge, api, name).and_then(|p| plugins.report(p).status) {
        Some(status) if api == KmsApi::V2 => status.key_id.as_deref() == key_id,
        _ => true,
    };
    first && current
}

fn is_write_key(judge: &Judge, kind: ProviderKind, name: &str) -> bool {
    let Some(config) = judge.configs.first() else {
        return false;
    };
    config.rules.iter().filter_map(|r| r.providers.first()).any(|p| match p {
        Provider::Keys(k, keys) => *k == kind && keys[0].name == name,
        Provider::Kms(kms) => kind == ProviderKind::Kms && kms.name == name,
        Provider::Identity => false,
    })
}
