//! The `k8s:enc:` envelope: which provider wrote a value, and for KMS the
//! structure around the ciphertext (envelope.go, kmsv2/envelope.go).

use prost::Message;

use super::{CryptoError, KmsApi, ProviderKind};

pub const ENC_PREFIX: &[u8] = b"k8s:enc:";

/// A value's envelope, up to where a key is needed.
#[derive(Debug)]
pub enum Envelope<'v> {
    /// aescbc, aesgcm, secretbox: `rest` is `<key name>:<payload>`; the name
    /// may contain `:`, so only configured names can split it.
    Keyed { kind: ProviderKind, rest: &'v [u8] },
    /// KMS v1: `<name>:<u16 len><encrypted DEK><data>`; the name may contain `:`.
    KmsV1 { rest: &'v [u8] },
    /// KMS v2: names cannot contain `:`, so the split is exact.
    KmsV2 { name: String, object: Result<KmsV2Object, KmsV2ObjectError> },
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown provider token {0:?} after k8s:enc:")]
pub struct UnknownProvider(String);

/// Why a KMS v2 `EncryptedObject` is refused (`ValidateEncryptedObject`).
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum KmsV2ObjectError {
    #[error("invalid EncryptedObject: {0}")]
    Decode(#[from] prost::DecodeError),
    #[error("unknown encryptedDEKSourceType: {0}")]
    SourceType(i32),
    #[error("encrypted data is empty")]
    EmptyData,
    #[error("encryptedDEKSource is {0} bytes, must be 1..{MAX_DEK_SOURCE}")]
    DekSourceSize(usize),
    #[error("keyID is {0} bytes, must be 1..{MAX_KEY_ID}")]
    KeyIdSize(usize),
    #[error("annotation key {0:?} is not a fully qualified domain name")]
    AnnotationKey(String),
    #[error("annotations total {0} bytes, more than {MAX_ANNOTATIONS}")]
    AnnotationsSize(usize),
}

impl<'v> Envelope<'v> {
    /// `None` for an unencrypted value; `Err` for an unknown provider token.
    pub fn parse(value: &'v [u8]) -> Option<Result<Self, UnknownProvider>> {
        let rest = value.strip_prefix(ENC_PREFIX)?;
        let keyed = |kind, rest| Ok(Envelope::Keyed { kind, rest });
        Some(if let Some(rest) = rest.strip_prefix(b"aescbc:v1:") {
            keyed(ProviderKind::Aescbc, rest)
        } else if let Some(rest) = rest.strip_prefix(b"aesgcm:v1:") {
            keyed(ProviderKind::Aesgcm, rest)
        } else if let Some(rest) = rest.strip_prefix(b"secretbox:v1:") {
            keyed(ProviderKind::Secretbox, rest)
        } else if let Some(rest) = rest.strip_prefix(b"kms:v1:") {
            Ok(Envelope::KmsV1 { rest })
        } else if let Some(rest) = rest.strip_prefix(b"kms:v2:") {
            let (name, payload) = split_name(rest);
            Ok(Envelope::KmsV2 { name, object: KmsV2Object::decode(payload) })
        } else {
            let token = split_name(&rest[..rest.len().min(40)]).0;
            Err(UnknownProvider(token))
        })
    }

    pub fn kind(&self) -> ProviderKind {
        match self {
            Envelope::Keyed { kind, .. } => *kind,
            _ => ProviderKind::Kms,
        }
    }

    pub fn kms_api(&self) -> Option<KmsApi> {
        match self {
            Envelope::Keyed { .. } => None,
            Envelope::KmsV1 { .. } => Some(KmsApi::V1),
            Envelope::KmsV2 { .. } => Some(KmsApi::V2),
        }
    }
}

/// Best-effort split at the first `:`, for names no configuration knows.
pub fn split_name(rest: &[u8]) -> (String, &[u8]) {
    match rest.iter().position(|&b| b == b':') {
        Some(i) => (String::from_utf8_lossy(&rest[..i]).into_owned(), &rest[i + 1..]),
        None => (String::from_utf8_lossy(rest).into_owned(), &[]),
    }
}

/// KMS v1 payload: a big-endian u16 length, the encrypted DEK, then the data.
pub fn split_kms_v1(payload: &[u8]) -> Result<(&[u8], &[u8]), CryptoError> {
    let bad = || {
        CryptoError::Malformed(
            "invalid data encountered by envelope transformer: failed to read uint16 length prefixed data"
                .into(),
        )
    };
    let len = u16::from_be_bytes(payload.get(..2).ok_or_else(bad)?.try_into().unwrap()) as usize;
    let dek = payload.get(2..2 + len).ok_or_else(bad)?;
    Ok((dek, &payload[2 + len..]))
}

use crate::proto::kmsv2 as pb;

/// A decoded and validated KMS v2 `EncryptedObject`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KmsV2Object {
    pub key_id: String,
    /// 0 = AES_GCM_KEY (the DEK itself), 1 = HKDF_SHA256_XNONCE_AES_GCM_SEED.
    pub dek_source_type: i32,
    pub encrypted_dek_source: Vec<u8>,
    pub encrypted_data: Vec<u8>,
    pub annotations: Vec<(String, Vec<u8>)>,
}

const MAX_DEK_SOURCE: usize = 1024;
const MAX_KEY_ID: usize = 1024;
const MAX_ANNOTATIONS: usize = 32 * 1024;

impl KmsV2Object {
    /// Decodes and validates as `ValidateEncryptedObject` does.
    pub fn decode(payload: &[u8]) -> Result<Self, KmsV2ObjectError> {
        use KmsV2ObjectError as E;
        let o = pb::EncryptedObject::decode(payload)?;
        if !(0..=1).contains(&o.encrypted_dek_source_type) {
            return Err(E::SourceType(o.encrypted_dek_source_type));
        }
        if o.encrypted_data.is_empty() {
            return Err(E::EmptyData);
        }
        if o.encrypted_dek_source.is_empty() || o.encrypted_dek_source.len() > MAX_DEK_SOURCE {
            return Err(E::DekSourceSize(o.encrypted_dek_source.len()));
        }
        if o.key_id.is_empty() || o.key_id.len() > MAX_KEY_ID {
            return Err(E::KeyIdSize(o.key_id.len()));
        }
        let mut total = 0;
        for (k, v) in &o.annotations {
            if !is_fully_qualified_domain_name(k) {
                return Err(E::AnnotationKey(k.clone()));
            }
            total += k.len() + v.len();
        }
        if total > MAX_ANNOTATIONS {
            return Err(E::AnnotationsSize(total));
        }
        let mut annotations: Vec<_> = o.annotations.into_iter().collect();
        annotations.sort();
        Ok(KmsV2Object {
            key_id: o.key_id,
            dek_source_type: o.encrypted_dek_source_type,
            encrypted_dek_source: o.encrypted_dek_source,
            encrypted_data: o.encrypted_data,
            annotations,
        })
    }
}

/// apimachinery `IsFullyQualifiedDomainName`: a DNS-1123 subdomain with at
/// least two labels, one trailing dot allowed.
fn is_fully_qualified_domain_name(name: &str) -> bool {
    let name = name.strip_suffix('.').unwrap_or(name);
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    name.len() <= 253 && name.split('.').count() >= 2 && name.split('.').all(label_ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens() {
        assert!(Envelope::parse(b"k8s\x00plain").is_none());
        assert!(matches!(
            Envelope::parse(b"k8s:enc:aescbc:v1:a:b:xyz"),
            Some(Ok(Envelope::Keyed { kind: ProviderKind::Aescbc, rest: b"a:b:xyz" }))
        ));
        assert!(Envelope::parse(b"k8s:enc:rot13:v1:k:xx").unwrap().is_err());
        assert!(matches!(
            Envelope::parse(b"k8s:enc:kms:v2:vault:\x01"),
            Some(Ok(Envelope::KmsV2 { object: Err(_), .. }))
        ));
    }

    #[test]
    fn kms_v1_length_prefix() {
        assert!(split_kms_v1(&[0]).is_err());
        assert!(split_kms_v1(&[0, 5, 1, 2]).is_err());
        assert_eq!(split_kms_v1(&[0, 2, 1, 2, 9]).unwrap(), (&[1u8, 2][..], &[9u8][..]));
    }

    #[test]
    fn fqdn_annotation_keys() {
        assert!(is_fully_qualified_domain_name("local-kek.kms.kubernetes.io"));
        assert!(is_fully_qualified_domain_name("a.b."));
        assert!(!is_fully_qualified_domain_name("nodots"));
        assert!(!is_fully_qualified_domain_name("Upper.case"));
    }
}
