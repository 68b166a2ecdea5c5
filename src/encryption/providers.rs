//! The cipher layouts of the apiserver's providers, byte for byte
//! (pkg/storage/value/encrypt/aes, secretbox). Each returns the plaintext,
//! or says whether the payload is structurally broken or just did not open.

use aes::cipher::{BlockDecryptMut, KeyIvInit};
use aes_gcm::aead::{Aead, KeyInit, Payload};
use zeroize::Zeroizing;

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    /// The payload cannot be a value of this provider, whatever the key.
    #[error("{0}")]
    Malformed(String),
    /// Well-formed, but this key does not open it.
    #[error("{0}")]
    Failed(String),
}

pub type Plaintext = Zeroizing<Vec<u8>>;

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
    let mut buf = Zeroizing::new(ct.to_vec());
    match key.len() {
        16 => cbc_decrypt::<aes::Aes128>(key, iv, &mut buf),
        24 => cbc_decrypt::<aes::Aes192>(key, iv, &mut buf),
        32 => cbc_decrypt::<aes::Aes256>(key, iv, &mut buf),
        n => return Err(CryptoError::Failed(format!("invalid AES key size {n}"))),
    }
    let pad = *buf.last().unwrap() as usize;
    if pad == 0 || pad > buf.len() {
        return Err(CryptoError::Failed("invalid PKCS7 data (empty or not padded)".into()));
    }
    if buf[buf.len() - pad..].iter().any(|&b| b as usize != pad) {
        return Err(CryptoError::Failed("invalid padding on input".into()));
    }
    let len = buf.len() - pad;
    buf.truncate(len);
    Ok(buf)
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
    let (nonce, ct) = payload.split_at(GCM_NONCE);
    let msg = Payload { msg: ct, aad };
    let nonce = aes_gcm::Nonce::from_slice(nonce);
    let opened = match key.len() {
        16 => aes_gcm::Aes128Gcm::new_from_slice(key).unwrap().decrypt(nonce, msg),
        24 => aes_gcm::AesGcm::<aes::Aes192, aes_gcm::aead::consts::U12>::new_from_slice(key)
            .unwrap()
            .decrypt(nonce, msg),
        32 => aes_gcm::Aes256Gcm::new_from_slice(key).unwrap().decrypt(nonce, msg),
        n => return Err(CryptoError::Failed(format!("invalid AES key size {n}"))),
    };
    opened
        .map(Zeroizing::new)
        .map_err(|_| CryptoError::Failed("cipher: message authentication failed".into()))
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
    crypto_secretbox::aead::Aead::decrypt(&cipher, nonce.into(), boxed)
        .map(Zeroizing::new)
        .map_err(|_| CryptoError::Failed("output array was not large enough for encryption".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// k8s-encryption.md §10 vector 1 (apiserver aes_test.go TestGCMLegacyDataCompatibility).
    #[test]
    fn gcm_legacy_vector() {
        let ct = hex::decode(
            "9f27c8fcea8a58c467d8e437dbf2d85955f9b4bd912f4ef967d788a0cb07797dac0a3f0a0845605ca85ac8562b4ae1",
        )
        .unwrap();
        let pt = aesgcm(b"snorlax_awesomes", &ct, b"bamboo").unwrap();
        assert_eq!(pt.as_slice(), b"pandas are the best");
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
        assert_eq!(aescbc(&key, &payload).unwrap().as_slice(), b"0123456789abcdef");
        assert!(matches!(aescbc(&key, &payload[..20]), Err(CryptoError::Malformed(_))));
        assert!(matches!(aescbc(&key, &payload[..16]), Err(CryptoError::Malformed(_))));
        assert!(matches!(aescbc(&key, &payload[..8]), Err(CryptoError::Malformed(_))));
    }

    #[test]
    fn secretbox_rejects_short_and_wrong_key() {
        assert!(matches!(secretbox(&[0; 32], &[0; 39]), Err(CryptoError::Malformed(_))));
        assert!(matches!(secretbox(&[0; 32], &[0; 64]), Err(CryptoError::Failed(_))));
    }
}
