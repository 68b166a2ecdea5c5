//! The cipher layouts of the apiserver's providers, byte for byte
//! (pkg/storage/value/encrypt/aes, secretbox). Each returns the plaintext,
//! or says whether the payload is structurally broken or just did not open.

use std::cell::Cell;

use aes::cipher::{BlockDecryptMut, KeyIvInit};
use aes_gcm::aead::{AeadInPlace, KeyInit};
use zeroize::{Zeroize, Zeroizing};

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    /// The payload cannot be a value of this provider, whatever the key.
    #[error("{0}")]
    Malformed(String),
    /// Well-formed, but this key does not open it.
    #[error("{0}")]
    Failed(String),
}

/// A decrypted value, in a buffer that each thread reuses from value to
/// value (a scan opens hundreds of thousands; a fresh 2 KB allocation for
/// each kept glibc busy merging its free lists), zeroed whenever it is
/// dropped: no plaintext outlives its `Plaintext`.
pub struct Plaintext {
    /// The bytes decrypted in place; the plaintext is the first `len`.
    buf: Vec<u8>,
    len: usize,
}

thread_local! {
    /// The thread's spare buffer, always zeroed; empty while lent out.
    static SPARE: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
}

/// A larger buffer is freed rather than kept (etcd values are at most a
/// few MiB; Secrets are at most 1 MiB).
const MAX_SPARE: usize = 1 << 20;

impl Plaintext {
    /// `bytes`, copied into the thread's spare buffer (or a new one), to be
    /// decrypted in place.
    fn copy_of(bytes: &[u8]) -> Plaintext {
        let mut buf = SPARE.with(Cell::take);
        buf.extend_from_slice(bytes);
        Plaintext { len: buf.len(), buf }
    }
}

impl std::ops::Deref for Plaintext {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl Drop for Plaintext {
    fn drop(&mut self) {
        // Every byte this value was written to (padding too); the rest of
        // the capacity was zeroed when an earlier value gave it back.
        self.buf.as_mut_slice().zeroize();
        self.buf.clear();
        let buf = std::mem::take(&mut self.buf);
        if buf.capacity() <= MAX_SPARE {
            // A thread that holds two at once keeps the one dropped last.
            let _ = SPARE.try_with(|spare| spare.set(buf));
        }
    }
}

impl std::fmt::Debug for Plaintext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Plaintext({} bytes)", self.len)
    }
}

const AES_BLOCK: usize = 16;
const GCM_NONCE: usize = 12;
const GCM_TAG: usize = 16;
const SECRETBOX_NONCE: usize = 24;
const SECRETBOX_TAG: usize = 16;

fn short() -> CryptoError {
    CryptoError::Malformed("the stored data was shorter than the required size".into())
}

/// `IV(16) || AES-CBC(PKCS#7)`, no authentication. Padding is checked exactly
/// as the apiserver does: a pad byte larger than a block is accepted.
pub fn aescbc(key: &[u8], payload: &[u8]) -> Result<Plaintext, CryptoError> {
    if payload.len() < AES_BLOCK {
        return Err(short());
    }
    let (iv, ct) = payload.split_at(AES_BLOCK);
    if ct.len() % AES_BLOCK != 0 {
        return Err(CryptoError::Malformed("the stored data is not a multiple of the block size".into()));
    }
    if ct.is_empty() {
        // The apiserver panics on this (index out of range); no value can be empty.
        return Err(CryptoError::Malformed("the stored data holds an IV and no ciphertext".into()));
    }
    aes_key_size(key)?;
    let mut plain = Plaintext::copy_of(ct);
    let buf = plain.buf.as_mut_slice();
    match key.len() {
        16 => cbc_decrypt::<aes::Aes128>(key, iv, buf),
        24 => cbc_decrypt::<aes::Aes192>(key, iv, buf),
        _ => cbc_decrypt::<aes::Aes256>(key, iv, buf),
    }
    let pad = *buf.last().unwrap() as usize;
    if pad == 0 || pad > buf.len() {
        return Err(CryptoError::Failed("invalid PKCS7 data (empty or not padded)".into()));
    }
    if buf[buf.len() - pad..].iter().any(|&b| b as usize != pad) {
        return Err(CryptoError::Failed("invalid padding on input".into()));
    }
    plain.len -= pad;
    Ok(plain)
}

/// AES-128, -192 or -256; the apiserver's wording otherwise.
fn aes_key_size(key: &[u8]) -> Result<(), CryptoError> {
    match key.len() {
        16 | 24 | 32 => Ok(()),
        n => Err(CryptoError::Failed(format!("invalid AES key size {n}"))),
    }
}

fn cbc_decrypt<C>(key: &[u8], iv: &[u8], buf: &mut [u8])
where
    C: aes::cipher::BlockDecrypt + aes::cipher::BlockCipher + aes::cipher::KeyInit,
    cbc::Decryptor<C>: KeyIvInit + BlockDecryptMut,
{
    let dec = cbc::Decryptor::<C>::new_from_slices(key, iv).expect("key and IV sizes checked");
    dec.decrypt_padded_mut::<aes::cipher::block_padding::NoPadding>(buf).expect("whole blocks checked");
}

/// `nonce(12) || ciphertext || tag(16)` with the etcd key as AAD.
pub fn aesgcm(key: &[u8], payload: &[u8], aad: &[u8]) -> Result<Plaintext, CryptoError> {
    if payload.len() < GCM_NONCE + GCM_TAG {
        return Err(short());
    }
    let (nonce, sealed) = payload.split_at(GCM_NONCE);
    let (ct, tag) = sealed.split_at(sealed.len() - GCM_TAG);
    let (nonce, tag) = (aes_gcm::Nonce::from_slice(nonce), aes_gcm::Tag::from_slice(tag));
    aes_key_size(key)?;
    let mut plain = Plaintext::copy_of(ct);
    let buf = plain.buf.as_mut_slice();
    let opened = match key.len() {
        16 => {
            aes_gcm::Aes128Gcm::new_from_slice(key).unwrap().decrypt_in_place_detached(nonce, aad, buf, tag)
        }
        24 => aes_gcm::AesGcm::<aes::Aes192, aes_gcm::aead::consts::U12>::new_from_slice(key)
            .unwrap()
            .decrypt_in_place_detached(nonce, aad, buf, tag),
        _ => aes_gcm::Aes256Gcm::new_from_slice(key).unwrap().decrypt_in_place_detached(nonce, aad, buf, tag),
    };
    opened.map(|()| plain).map_err(|_| CryptoError::Failed("cipher: message authentication failed".into()))
}

/// `nonce(24) || tag(16) || XSalsa20 ciphertext` (NaCl secretbox), no AAD.
pub fn secretbox(key: &[u8], payload: &[u8]) -> Result<Plaintext, CryptoError> {
    use crypto_secretbox::{KeyInit as _, XSalsa20Poly1305};
    if payload.len() < SECRETBOX_NONCE + SECRETBOX_TAG {
        return Err(short());
    }
    let cipher = XSalsa20Poly1305::new_from_slice(key)
        .map_err(|_| CryptoError::Failed(format!("invalid secretbox key size {}", key.len())))?;
    let (nonce, boxed) = payload.split_at(SECRETBOX_NONCE);
    let (tag, ct) = boxed.split_at(SECRETBOX_TAG);
    let mut plain = Plaintext::copy_of(ct);
    crypto_secretbox::aead::AeadInPlace::decrypt_in_place_detached(
        &cipher,
        nonce.into(),
        b"",
        plain.buf.as_mut_slice(),
        tag.into(),
    )
    .map(|()| plain)
    .map_err(|_| CryptoError::Failed("output array was not large enough for encryption".into()))
}

/// KMS v1 data after the encrypted DEK: `unionTransformers{GCM, CBC}`. AES-GCM
/// with the etcd key as AAD (what 1.25+ writes) first, then AES-CBC (1.24);
/// the flag says the CBC fallback opened it (stale, and unauthenticated, so
/// the caller must still check the plaintext).
pub fn kms_v1_data(dek: &[u8], data: &[u8], aad: &[u8]) -> Result<(Plaintext, bool), CryptoError> {
    let gcm = match aesgcm(dek, data, aad) {
        Ok(plain) => return Ok((plain, false)),
        Err(e) => e,
    };
    match aescbc(dek, data) {
        Ok(plain) => Ok((plain, true)),
        Err(cbc) => match (&gcm, &cbc) {
            (CryptoError::Malformed(_), CryptoError::Malformed(_)) => {
                Err(CryptoError::Malformed(format!("neither AES-GCM ({gcm}) nor AES-CBC ({cbc}) data")))
            }
            _ => Err(CryptoError::Failed(format!("AES-GCM: {gcm}; AES-CBC fallback: {cbc}"))),
        },
    }
}

/// Whether KMS v1 data could be either layout at all, checked before any
/// plugin call: GCM needs a nonce and a tag, CBC an IV and whole blocks.
pub fn kms_v1_data_shape(data: &[u8]) -> Result<(), CryptoError> {
    let gcm = data.len() >= GCM_NONCE + GCM_TAG;
    let cbc = data.len() >= 2 * AES_BLOCK && data.len().is_multiple_of(AES_BLOCK);
    if gcm || cbc {
        Ok(())
    } else {
        Err(short())
    }
}

/// KMS v2 `encryptedDEKSourceType` values.
pub const KMS_V2_AES_GCM_KEY: i32 = 0;
pub const KMS_V2_HKDF_SEED: i32 = 1;

const XNONCE_INFO: usize = 32;
const MIN_SEED: usize = 32;

/// Whether `encryptedData` of this source type is long enough to be a value
/// at all, checked before any plugin call.
pub fn kms_v2_data_shape(source_type: i32, data: &[u8]) -> Result<(), CryptoError> {
    let min = match source_type {
        KMS_V2_AES_GCM_KEY => GCM_NONCE + GCM_TAG,
        _ => XNONCE_INFO + GCM_NONCE + GCM_TAG,
    };
    if data.len() < min {
        return Err(short());
    }
    Ok(())
}

/// KMS v2 `encryptedData` with the unwrapped DEK source: type 0 is AES-GCM
/// under the DEK; type 1 (`aes_extended_nonce.go`) derives the key with
/// HKDF-SHA256 Expand only (PRK = seed, info = the first 32 bytes, L = 32)
/// and opens the rest with AES-256-GCM. AAD is the etcd key in both.
pub fn kms_v2_data(
    source_type: i32,
    secret: &[u8],
    data: &[u8],
    aad: &[u8],
) -> Result<Plaintext, CryptoError> {
    kms_v2_data_shape(source_type, data)?;
    match source_type {
        KMS_V2_AES_GCM_KEY => aesgcm(secret, data, aad),
        KMS_V2_HKDF_SEED => {
            let (info, rest) = data.split_at(XNONCE_INFO);
            let key = xnonce_key(secret, info)?;
            aesgcm(key.as_slice(), rest, aad)
        }
        t => Err(CryptoError::Malformed(format!("unknown encryptedDEKSourceType: {t}"))),
    }
}

/// HKDF-SHA256 Expand (no Extract, no salt) of a KMS v2 seed.
fn xnonce_key(seed: &[u8], info: &[u8]) -> Result<Zeroizing<[u8; 32]>, CryptoError> {
    if seed.len() < MIN_SEED {
        return Err(CryptoError::Failed(format!(
            "invalid seed length {}, must be at least {MIN_SEED}",
            seed.len()
        )));
    }
    let hk = hkdf::Hkdf::<sha2::Sha256>::from_prk(seed)
        .map_err(|_| CryptoError::Failed("invalid seed for HKDF".into()))?;
    let mut key = Zeroizing::new([0u8; 32]);
    hk.expand(info, key.as_mut_slice()).map_err(|_| CryptoError::Failed("HKDF expand failed".into()))?;
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The capacity of the thread's spare buffer, when it is empty.
    fn spare() -> Option<usize> {
        let buf = SPARE.with(Cell::take);
        let capacity = buf.is_empty().then_some(buf.capacity());
        SPARE.with(|s| s.set(buf));
        capacity
    }

    /// One buffer per thread serves value after value: lent out while a
    /// plaintext lives, given back (emptied and zeroed) when it is dropped,
    /// also when the value did not open.
    #[test]
    fn plaintext_buffers_are_reused_and_given_back_empty() {
        let key = [7u8; 32];
        let sealed = |plain: &[u8]| {
            let nonce = [1u8; GCM_NONCE];
            let ct = aes_gcm::aead::Aead::encrypt(
                &aes_gcm::Aes256Gcm::new_from_slice(&key).unwrap(),
                (&nonce).into(),
                aes_gcm::aead::Payload { msg: plain, aad: b"k" },
            )
            .unwrap();
            [nonce.as_slice(), &ct].concat()
        };
        let first = aesgcm(&key, &sealed(&[b'x'; 2000]), b"k").unwrap();
        let at = first.as_ptr();
        assert_eq!(&first[..], &[b'x'; 2000][..]);
        drop(first);
        assert!(spare().is_some_and(|capacity| capacity >= 2000));
        let second = aesgcm(&key, &sealed(b"y"), b"k").unwrap();
        assert_eq!((&second[..], second.as_ptr()), (&b"y"[..], at));
        // Two at once: the second gets a buffer of its own.
        let third = aesgcm(&key, &sealed(b"z"), b"k").unwrap();
        assert_ne!(third.as_ptr(), at);
        drop((second, third));
        assert!(aesgcm(&key, &sealed(b"w"), b"other aad").is_err());
        assert!(spare().is_some());
    }

    /// k8s-encryption.md §10 vector 1 (apiserver aes_test.go TestGCMLegacyDataCompatibility).
    #[test]
    fn gcm_legacy_vector() {
        let ct = hex::decode(
            "9f27c8fcea8a58c467d8e437dbf2d85955f9b4bd912f4ef967d788a0cb07797dac0a3f0a0845605ca85ac8562b4ae1",
        )
        .unwrap();
        let pt = aesgcm(b"snorlax_awesomes", &ct, b"bamboo").unwrap();
        assert_eq!(&pt[..], b"pandas are the best");
        assert!(matches!(aesgcm(b"snorlax_awesomes", &ct, b"bambooX"), Err(CryptoError::Failed(_))));
    }

    #[test]
    fn cbc_lenient_padding_and_structure() {
        use aes::cipher::BlockEncryptMut;
        let key = [7u8; 16];
        let iv = [1u8; 16];
        // One block whose last byte is 0x10 (16): a full pad block, accepted.
        let mut block = [0x10u8; 32];
        block[..16].copy_from_slice(b"0123456789abcdef");
        let enc = cbc::Encryptor::<aes::Aes128>::new_from_slices(&key, &iv).unwrap();
        let ct =
            enc.encrypt_padded_mut::<aes::cipher::block_padding::NoPadding>(&mut block, 32).unwrap().to_vec();
        let payload = [iv.as_slice(), &ct].concat();
        assert_eq!(&aescbc(&key, &payload).unwrap()[..], b"0123456789abcdef");
        assert!(matches!(aescbc(&key, &payload[..20]), Err(CryptoError::Malformed(_))));
        assert!(matches!(aescbc(&key, &payload[..16]), Err(CryptoError::Malformed(_))));
        assert!(matches!(aescbc(&key, &payload[..8]), Err(CryptoError::Malformed(_))));
    }

    #[test]
    fn secretbox_rejects_short_and_wrong_key() {
        assert!(matches!(secretbox(&[0; 32], &[0; 39]), Err(CryptoError::Malformed(_))));
        assert!(matches!(secretbox(&[0; 32], &[0; 64]), Err(CryptoError::Failed(_))));
    }

    /// k8s-encryption.md §10 vector 2 (TestExtendedNonceGCMLegacyDataCompatibility).
    #[test]
    fn extended_nonce_vector() {
        let seed = hex::decode("5d40323a820ff95561675e3b95e81867c5fdd561d35a88a2d08b08aa9d4fcf5c").unwrap();
        let data = hex::decode(
            "2442759e33945fbad709db577a0f037fd8a709fc76979b8942209debcecb9d57efe3d6ff6a1ef6ee9a5003b9833b3043cec1e47b35175b151107a8d2416b0e296bbf66b5d102fcefdf9a78f293d271",
        )
        .unwrap();
        assert_eq!(
            hex::encode(xnonce_key(&seed, &data[..32]).unwrap().as_slice()),
            "6e58b7659c304b0c382f42f16bd700465def1dead80bf6f1bf1d52073bdb0c00"
        );
        let pt = kms_v2_data(KMS_V2_HKDF_SEED, &seed, &data, b"bamboo").unwrap();
        assert_eq!(&pt[..], b"pandas are the best");
        assert!(matches!(
            kms_v2_data(KMS_V2_HKDF_SEED, &seed, &data, b"bambo0"),
            Err(CryptoError::Failed(_))
        ));
        assert!(matches!(
            kms_v2_data(KMS_V2_HKDF_SEED, &seed[..16], &data, b"bamboo"),
            Err(CryptoError::Failed(_))
        ));
        assert!(matches!(
            kms_v2_data(KMS_V2_HKDF_SEED, &seed, &data[..50], b"bamboo"),
            Err(CryptoError::Malformed(_))
        ));
    }

    #[test]
    fn kms_v1_gcm_then_cbc() {
        use aes::cipher::BlockEncryptMut;
        let ct = hex::decode(
            "9f27c8fcea8a58c467d8e437dbf2d85955f9b4bd912f4ef967d788a0cb07797dac0a3f0a0845605ca85ac8562b4ae1",
        )
        .unwrap();
        let (pt, cbc) = kms_v1_data(b"snorlax_awesomes", &ct, b"bamboo").unwrap();
        assert_eq!((&pt[..], cbc), (&b"pandas are the best"[..], false));
        let (key, iv) = ([3u8; 32], [4u8; 16]);
        let mut block = [0x10u8; 32];
        block[..16].copy_from_slice(b"0123456789abcdef");
        let enc = cbc::Encryptor::<aes::Aes256>::new_from_slices(&key, &iv).unwrap();
        let ct =
            enc.encrypt_padded_mut::<aes::cipher::block_padding::NoPadding>(&mut block, 32).unwrap().to_vec();
        let payload = [iv.as_slice(), &ct].concat();
        let (pt, cbc) = kms_v1_data(&key, &payload, b"any").unwrap();
        assert_eq!((&pt[..], cbc), (&b"0123456789abcdef"[..], true));
        assert!(matches!(kms_v1_data(&key, &[0; 8], b"x"), Err(CryptoError::Malformed(_))));
    }
}
