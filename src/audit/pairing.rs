//! Key pairing: which keys a backup's values need, and whether the supplied
//! configs hold them. A DR runbook's question: can this backup be restored
//! with these keys, and which old key must not be deleted yet?

use std::collections::BTreeMap;

use serde::Serialize;

use super::verdict::{Class, Judge, Verdict};
use crate::encryption::{KeyId, KmsApi, PluginReport, Provider, ProviderKind};

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

/// The keys a backup's live values name, tallied one verdict at a time.
#[derive(Default)]
pub(super) struct KeyTally {
    rows: BTreeMap<Slot, Count>,
    /// The slot of the previous verdict: neighbouring values mostly share a
    /// key, and a hit needs no allocation.
    last: Option<Slot>,
}

#[derive(Default)]
struct Count {
    entries: u64,
    decryptable: u64,
    /// The key that last opened a value (of several keys with one name,
    /// the report shows the one that opened the values).
    opened_by: Option<KeyId>,
}

impl KeyTally {
    pub(super) fn add(&mut self, v: &Verdict) {
        let (Some(provider), Some(name)) = (v.provider, v.key_name.as_deref()) else {
            return;
        };
        if v.class == Class::Malformed {
            return;
        }
        let same = |s: &Slot| {
            s.0 == provider && s.1 == name && s.2 == v.kms_api && s.3.as_deref() == v.key_id.as_deref()
        };
        if !self.last.as_ref().is_some_and(same) {
            self.last = Some((provider, name.to_owned(), v.kms_api, v.key_id.clone()));
        }
        let Some(slot) = &self.last else { return };
        if !self.rows.contains_key(slot) {
            self.rows.insert(slot.clone(), Count::default());
        }
        let Some(count) = self.rows.get_mut(slot) else { return };
        count.entries += 1;
        if v.class == Class::Decryptable {
            count.decryptable += 1;
        }
        if v.key.is_some() {
            count.opened_by = v.key;
        }
    }

    /// One row per key, with what the supplied configs and plugins say of it.
    pub(super) fn finish(self, judge: &Judge) -> Vec<KeyUse> {
        self.rows
            .into_iter()
            .map(|((provider, name, kms_api, key_id), count)| {
                let configured = match count.opened_by {
                    Some(key) => Some(judge.keyring.key(key)),
                    None => judge.keyring.keys().iter().find(|k| k.kind == provider && k.name == name),
                };
                KeyUse {
                    provider,
                    available: match kms_api {
                        Some(api) => kms_plugin(judge, api, &name)
                            .is_some_and(|p| judge.keyring.kms_plugins().available(p)),
                        None => judge.keyring.has(provider, &name),
                    },
                    write_key: match kms_api {
                        Some(api) => is_kms_write_key(judge, api, &name, key_id.as_deref()),
                        None => is_write_key(judge, provider, &name),
                    },
                    plugin: kms_api
                        .and_then(|api| kms_plugin(judge, api, &name))
                        .map(|p| judge.keyring.kms_plugins().report(p)),
                    fingerprint: configured.map(|k| k.fingerprint()),
                    origin: configured.map(|k| k.origin.clone()),
                    name,
                    kms_api,
                    key_id,
                    entries: count.entries,
                    decryptable: count.decryptable,
                }
            })
            .collect()
    }
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
