//! Per-value decode + decrypt + verify throughput for each provider, through
//! the same path the scanner takes (`Judge::judge`).

use aes::cipher::{BlockEncryptMut, KeyIvInit};
use aes_gcm::aead::{Aead, KeyInit, Payload};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use etcd_audit::audit::{Class, Judge};
use etcd_audit::encryption::EncryptionConfig;
use etcd_audit::k8s::RegistryKey;

const CONFIG: &str = "apiVersion: apiserver.config.k8s.io/v1
kind: EncryptionConfiguration
resources:
- resources: [secrets]
  providers:
  - aescbc: {keys: [{name: cbc, secret: MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=}]}
  - aesgcm: {keys: [{name: gcm, secret: MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=}]}
  - secretbox: {keys: [{name: sb, secret: MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=}]}
  - identity: {}
";
const KEY: &[u8; 32] = b"0123456789abcdef0123456789abcdef";
const ETCD_KEY: &[u8] = b"/registry/secrets/bench/s1";

/// A ~2 KB Secret as kube-apiserver stores it: `k8s\0` + runtime.Unknown.
fn secret() -> Vec<u8> {
    fn field(tag: u8, body: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        let mut n = body.len();
        while n >= 0x80 {
            out.push((n as u8) | 0x80);
            n >>= 7;
        }
        out.push(n as u8);
        out.extend_from_slice(body);
        out
    }
    let meta = [field(0x0a, b"s1"), field(0x1a, b"bench")].concat();
    let entry = [field(0x0a, b"blob"), field(0x12, &[b'x'; 2000])].concat();
    let secret = [field(0x0a, &meta), field(0x12, &entry), field(0x1a, b"Opaque")].concat();
    let type_meta = [field(0x0a, b"v1"), field(0x12, b"Secret")].concat();
    [b"k8s\0".as_slice(), &field(0x0a, &type_meta), &field(0x12, &secret), &[0x1a, 0, 0x22, 0]].concat()
}

fn values() -> Vec<(&'static str, Vec<u8>)> {
    let plain = secret();
    let mut padded = plain.clone();
    let pad = 16 - plain.len() % 16;
    padded.extend(std::iter::repeat_n(pad as u8, pad));
    let iv = [3u8; 16];
    let len = padded.len();
    let enc = cbc::Encryptor::<aes::Aes256>::new_from_slices(KEY, &iv).unwrap();
    let ct =
        enc.encrypt_padded_mut::<aes::cipher::block_padding::NoPadding>(&mut padded, len).unwrap().to_vec();
    let cbc = [b"k8s:enc:aescbc:v1:cbc:".as_slice(), &iv, &ct].concat();
    let nonce = [5u8; 12];
    let gcm_ct = aes_gcm::Aes256Gcm::new_from_slice(KEY)
        .unwrap()
        .encrypt((&nonce).into(), Payload { msg: &plain, aad: ETCD_KEY })
        .unwrap();
    let gcm = [b"k8s:enc:aesgcm:v1:gcm:".as_slice(), &nonce, &gcm_ct].concat();
    let sb_nonce = [9u8; 24];
    let sb_ct = crypto_secretbox::aead::Aead::encrypt(
        &<crypto_secretbox::XSalsa20Poly1305 as crypto_secretbox::KeyInit>::new_from_slice(KEY).unwrap(),
        (&sb_nonce).into(),
        plain.as_slice(),
    )
    .unwrap();
    let sb = [b"k8s:enc:secretbox:v1:sb:".as_slice(), &sb_nonce, &sb_ct].concat();
    vec![("identity", plain), ("aescbc", cbc), ("aesgcm", gcm), ("secretbox", sb)]
}

fn providers(c: &mut Criterion) {
    let judge = Judge::new(vec![EncryptionConfig::parse("bench.yaml", CONFIG.as_bytes()).unwrap()], vec![]);
    let rk = RegistryKey::parse(ETCD_KEY, "/registry").unwrap();
    let mut group = c.benchmark_group("judge_2kb_secret");
    for (name, value) in values() {
        let expected = if name == "identity" { Class::Plaintext } else { Class::Decryptable };
        assert_eq!(judge.judge(ETCD_KEY, &rk, &value).class, expected, "{name}");
        group.throughput(Throughput::Bytes(value.len() as u64));
        group.bench_function(name, |b| b.iter(|| judge.judge(ETCD_KEY, &rk, std::hint::black_box(&value))));
    }
    group.finish();
}

criterion_group!(benches, providers);
criterion_main!(benches);
