//! k3s / RKE2 bootstrap data (docs/formats/k3s-bootstrap.md): the server
//! token, the `/bootstrap/<hash>` key it names, and the sealed blob under it
//! (PBKDF2-HMAC-SHA1 + AES-256-GCM) that holds the cluster CA keys, the
//! service-account key, the server password and the secrets
//! EncryptionConfiguration. Only names and fingerprints ever leave here.

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::EncryptionConfig;

/// `SHA-256("")[..12]`: the key of bootstrap data sealed with an empty passphrase.
pub const EMPTY_TOKEN_HASH: &str = "e3b0c44298fc";
const ROUNDS: u32 = 4096;
const NONCE: usize = 12;

/// The 12 hex chars k3s names bootstrap data by (`/bootstrap/<hash>`,
/// `K3s-Token-Hash`): the start of `SHA-256(passphrase)`.
pub fn token_hash(passphrase: &[u8]) -> String {
    hex::encode(&Sha256::digest(passphrase)[..6])
}

/// A server token as the user supplied it: never printed, zeroed on drop.
pub struct Token {
    /// The password part (`NormalizeToken`): what current k3s seals with.
    pub passphrase: Zeroizing<String>,
    /// The whole token as given: what old k3s sealed with (legacy form).
    pub full: Zeroizing<String>,
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Token({} / legacy {})", self.hash(), token_hash(self.full.as_bytes()))
    }
}

impl Token {
    /// `K10<CA hash>::<user>:<password>` gives `<password>`; anything else is
    /// the password itself. Surrounding whitespace (a token file's newline) goes.
    pub fn parse(text: &str) -> Token {
        let full = text.trim();
        let passphrase = match full.strip_prefix("K10").and_then(|rest| rest.split_once("::")) {
            Some((_, credentials)) => credentials.split_once(':').map_or(credentials, |(_, pw)| pw),
            None => full,
        };
        Token { passphrase: Zeroizing::new(passphrase.to_string()), full: Zeroizing::new(full.to_string()) }
    }

    pub fn hash(&self) -> String {
        token_hash(self.passphrase.as_bytes())
    }

    /// The passphrase that seals data stored under `hash`, if this token has it.
    pub fn passphrase_for(&self, hash: &str) -> Option<&str> {
        if self.hash() == hash {
            Some(&self.passphrase)
        } else if token_hash(self.full.as_bytes()) == hash {
            Some(&self.full)
        } else {
            None
        }
    }
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum UnsealError {
    #[error("not <salt>:<base64>")]
    Shape,
    #[error("the sealed part is not base64")]
    Base64,
    #[error("the sealed part is shorter than a nonce and a tag")]
    Short,
    #[error("AES-GCM authentication failed: wrong token")]
    WrongToken,
}

/// Opens a bootstrap value (`<salt>:<base64(nonce ‖ ciphertext ‖ tag)>`);
/// the salt is its 16 ASCII bytes as they are.
pub fn unseal(value: &[u8], passphrase: &str) -> Result<Zeroizing<Vec<u8>>, UnsealError> {
    let colon = value.iter().position(|&b| b == b':').ok_or(UnsealError::Shape)?;
    let (salt, sealed) = (&value[..colon], &value[colon + 1..]);
    let sealed = base64::engine::general_purpose::STANDARD.decode(sealed).map_err(|_| UnsealError::Base64)?;
    if sealed.len() < NONCE + 16 {
        return Err(UnsealError::Short);
    }
    let key = derive_key(passphrase, salt);
    let cipher = Aes256Gcm::new_from_slice(key.as_slice()).expect("32-byte key");
    let (nonce, ciphertext) = sealed.split_at(NONCE);
    cipher
        .decrypt(Nonce::from_slice(nonce), ciphertext)
        .map(Zeroizing::new)
        .map_err(|_| UnsealError::WrongToken)
}

fn derive_key(passphrase: &str, salt: &[u8]) -> Zeroizing<[u8; 32]> {
    let mut key = Zeroizing::new([0u8; 32]);
    pbkdf2::pbkdf2_hmac::<sha1::Sha1>(passphrase.as_bytes(), salt, ROUNDS, key.as_mut_slice());
    key
}

/// One file of the bootstrap data, by its `ControlRuntimeBootstrap` field name.
pub struct BootstrapFile {
    pub name: String,
    pub content: Zeroizing<Vec<u8>>,
}

impl BootstrapFile {
    pub fn sha256(&self) -> String {
        format!("sha256:{}", hex::encode(Sha256::digest(self.content.as_slice())))
    }
}

#[derive(Debug, thiserror::Error)]
#[error("the bootstrap data is not JSON of either k3s layout: {0}")]
pub struct LayoutError(serde_json::Error);

/// The files of opened bootstrap data, in name order: `{"Name": {"Timestamp",
/// "Content": base64}}`, or the older `{"Name": base64}`.
pub fn files(plain: &[u8]) -> Result<Vec<BootstrapFile>, LayoutError> {
    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    enum Entry {
        File {
            #[serde(rename = "Content")]
            content: Zeroizing<String>,
        },
        Bytes(Zeroizing<String>),
    }
    let map: std::collections::BTreeMap<String, Entry> =
        serde_json::from_slice(plain).map_err(LayoutError)?;
    Ok(map
        .into_iter()
        .map(|(name, entry)| {
            let text = match &entry {
                Entry::File { content } | Entry::Bytes(content) => content,
            };
            let bytes = base64::engine::general_purpose::STANDARD.decode(text.as_bytes()).unwrap_or_default();
            BootstrapFile { name, content: Zeroizing::new(bytes) }
        })
        .collect())
}

/// What an auditor takes from opened bootstrap data.
pub struct Opened {
    pub files: Vec<BootstrapFile>,
    /// The `EncryptionConfig` file, parsed (its path reads `k3s-bootstrap`).
    pub config: Option<Result<EncryptionConfig, super::ConfigError>>,
    /// The `EncryptionHash` stage (`start`, `rotate`, `reencrypt_finished`, …).
    pub stage: Option<String>,
    /// `PasswdFile` holds a password for the `server` user.
    pub server_password: bool,
}

pub const BOOTSTRAP_ORIGIN: &str = "k3s-bootstrap";

pub fn open(plain: &[u8]) -> Result<Opened, LayoutError> {
    let files = files(plain)?;
    let file = |name: &str| files.iter().find(|f| f.name == name);
    let config = file("EncryptionConfig").map(|f| EncryptionConfig::parse(BOOTSTRAP_ORIGIN, &f.content));
    let stage = file("EncryptionHash")
        .map(|f| String::from_utf8_lossy(&f.content).split('-').next().unwrap_or_default().to_string());
    let server_password = file("PasswdFile").is_some_and(|f| {
        f.content.split(|&b| b == b'\n').any(|line| {
            let fields: Vec<&[u8]> = line.split(|&b| b == b',').collect();
            fields.len() >= 2 && !fields[0].is_empty() && fields[1] == b"server"
        })
    });
    Ok(Opened { files, config, stage, server_password })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// docs/formats/k3s-bootstrap.md §3, worked example.
    #[test]
    fn token_forms_hash_and_key_derivation() {
        let pw = "0123456789abcdef0123456789abcdef";
        assert_eq!(token_hash(pw.as_bytes()), "3eb1bd439947");
        let full = format!("K10{}::server:{pw}", "ab".repeat(32));
        let token = Token::parse(&format!("{full}\n"));
        assert_eq!(token.passphrase.as_str(), pw);
        assert_eq!(token.hash(), "3eb1bd439947");
        assert_eq!(token_hash(full.as_bytes()), "98f892e50a3d");
        assert_eq!(token.passphrase_for("98f892e50a3d"), Some(full.as_str()));
        assert_eq!(token.passphrase_for("3eb1bd439947"), Some(pw));
        assert_eq!(token.passphrase_for("000000000000"), None);
        assert_eq!(Token::parse("bare-password").passphrase.as_str(), "bare-password");
        assert_eq!(token_hash(b""), EMPTY_TOKEN_HASH);
        assert_eq!(
            hex::encode(derive_key(pw, b"a1b2c3d4e5f60718").as_slice()),
            "fe34141a57d4f43e203f5c3550aa6f4ea00ffda4daee0ba5f1e712d535ec7eb0"
        );
        assert!(!format!("{token:?}").contains(pw), "Debug must not show the token");
    }

    #[test]
    fn seal_open_round_trip_and_wrong_token() {
        let key = derive_key("pw", b"0011223344556677");
        let cipher = Aes256Gcm::new_from_slice(key.as_slice()).unwrap();
        let nonce = [7u8; 12];
        let plain = br#"{"PasswdFile":{"Timestamp":"2026-01-01T00:00:00Z","Content":"cHcsc2VydmVyLHNlcnZlcixrM3M6c2VydmVyCg=="}}"#;
        let sealed = [&nonce[..], &cipher.encrypt(Nonce::from_slice(&nonce), &plain[..]).unwrap()].concat();
        let value =
            [&b"0011223344556677:"[..], base64::engine::general_purpose::STANDARD.encode(sealed).as_bytes()]
                .concat();
        let opened = unseal(&value, "pw").unwrap();
        assert_eq!(opened.as_slice(), plain);
        assert_eq!(unseal(&value, "other").unwrap_err(), UnsealError::WrongToken);
        assert_eq!(unseal(b"no-colon", "pw").unwrap_err(), UnsealError::Shape);
        let o = open(&opened).unwrap();
        assert!(o.server_password && o.config.is_none() && o.stage.is_none());
        assert_eq!(o.files[0].name, "PasswdFile");
        // The older layout: name -> base64 bytes.
        let old = open(br#"{"ServerCAKey":"a2V5","EncryptionHash":"cm90YXRlLWFiYw=="}"#).unwrap();
        assert_eq!(old.stage.as_deref(), Some("rotate"));
        assert_eq!(
            old.files.iter().map(|f| f.name.as_str()).collect::<Vec<_>>(),
            ["EncryptionHash", "ServerCAKey"]
        );
    }
}
