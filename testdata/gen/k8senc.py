"""Encode values exactly as kube-apiserver stores them in etcd, plus a tiny etcd client.

Used by populate.py to build the etcd-audit test fixtures. Dependencies: the standard
library, `cryptography` and `pynacl`. Byte formats follow docs/formats/k8s-encryption.md
(section numbers below refer to it).

Randomness: every function that needs nonces/IVs takes `rand`, a callable n -> bytes. The
default is os.urandom (what the apiserver does); the fixture generator passes a seeded
generator so the logical content is reproducible from run to run.

KMS: there is no real KMS here. A "wrap" under a local key-encryption key (KEK) stands in for
the plugin's Encrypt call:  wrapped = nonce(12) || AES-256-GCM(KEK, nonce, secret, AAD=none).
A test KMS plugin (v1beta1 Decrypt(cipher) or v2 Decrypt(ciphertext)) unwraps with
`kms_unwrap(KMS_KEK, ciphertext)`; KMS_KEK is fixed below so the fixtures stay usable.
"""

import base64
import hashlib
import hmac
import http.client
import json
import os
import struct
import uuid

import nacl.secret
from cryptography.hazmat.primitives import hashes, padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDFExpand

# --------------------------------------------------------------------------------------------
# Protobuf wire format (hand-rolled: the subset kube-apiserver's gogo encoders produce)
# --------------------------------------------------------------------------------------------


def varint(n: int) -> bytes:
    if n < 0:  # int64 fields: negative numbers are 10-byte two's complement varints
        n += 1 << 64
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def pb_varint(num: int, n: int) -> bytes:
    return varint(num << 3 | 0) + varint(n)


def pb_bytes(num: int, b) -> bytes:
    if isinstance(b, str):
        b = b.encode()
    return varint(num << 3 | 2) + varint(len(b)) + b


def pb_parse(b: bytes) -> list:
    """Decode one message level into [(field, wiretype, value)]; raises ValueError on bad
    input. Only used to check our own encoders (and to prove 'garbage' really is garbage)."""
    out, i = [], 0

    def rd_varint():
        nonlocal i
        n = shift = 0
        while True:
            if i >= len(b) or shift > 63:
                raise ValueError("truncated varint")
            c = b[i]
            i += 1
            n |= (c & 0x7F) << shift
            shift += 7
            if c < 0x80:
                return n

    while i < len(b):
        tag = rd_varint()
        num, wt = tag >> 3, tag & 7
        if num == 0:
            raise ValueError("field number 0")
        if wt == 0:
            out.append((num, wt, rd_varint()))
        elif wt == 2:
            n = rd_varint()
            if i + n > len(b):
                raise ValueError("truncated length-delimited field")
            out.append((num, wt, b[i:i + n]))
            i += n
        elif wt in (1, 5):
            n = 8 if wt == 1 else 4
            if i + n > len(b):
                raise ValueError("truncated fixed field")
            out.append((num, wt, b[i:i + n]))
            i += n
        else:
            raise ValueError(f"unsupported wire type {wt}")
    return out


def pb_map(num: int, m: dict) -> bytes:
    """map<string, bytes|string>: one entry message {1 key, 2 value} per pair, keys sorted
    (gogo sorts map keys when marshalling)."""
    return b"".join(pb_bytes(num, pb_bytes(1, k) + pb_bytes(2, m[k])) for k in sorted(m))


# --------------------------------------------------------------------------------------------
# Kubernetes objects (protobuf storage encoding, §9) and JSON storage encoding
# --------------------------------------------------------------------------------------------

PROTO_MAGIC = b"k8s\x00"
FIXED_EPOCH = 1700000000  # creationTimestamp base, so fixtures do not depend on the clock


def object_uid(namespace, name) -> str:
    # Deterministic UID: real ones are random v4 UUIDs, but tests prefer stable bytes.
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"etcd-audit/{namespace}/{name}"))


def object_meta(name, namespace=None, uid=None, created=FIXED_EPOCH) -> bytes:
    out = pb_bytes(1, name)
    if namespace:
        out += pb_bytes(3, namespace)
    out += pb_bytes(5, uid or object_uid(namespace, name))
    out += pb_bytes(8, pb_varint(1, created))  # Time{1 seconds}; nanos omitted (0)
    return out


def unknown(kind: str, raw: bytes, api_version="v1") -> bytes:
    """k8s\\0 + runtime.Unknown. contentEncoding (3) and contentType (4) are always written,
    empty, exactly like apimachinery's protobuf serializer."""
    type_meta = pb_bytes(1, api_version) + pb_bytes(2, kind)
    return PROTO_MAGIC + pb_bytes(1, type_meta) + pb_bytes(2, raw) + pb_bytes(3, b"") + pb_bytes(4, b"")


def secret_pb(name, namespace, data: dict, type_="Opaque", **meta) -> bytes:
    raw = pb_bytes(1, object_meta(name, namespace, **meta)) + pb_map(2, data) + pb_bytes(3, type_)
    return unknown("Secret", raw)


def configmap_pb(name, namespace, data: dict, **meta) -> bytes:
    raw = pb_bytes(1, object_meta(name, namespace, **meta)) + pb_map(2, data)
    return unknown("ConfigMap", raw)


def namespace_pb(name, **meta) -> bytes:
    spec = pb_bytes(1, "kubernetes")  # NamespaceSpec{1 finalizers}
    status = pb_bytes(1, "Active")  # NamespaceStatus{1 phase}
    raw = pb_bytes(1, object_meta(name, None, **meta)) + pb_bytes(2, spec) + pb_bytes(3, status)
    return unknown("Namespace", raw)


def event_pb(name, namespace, reason: str, message: str, **meta) -> bytes:
    # core/v1 Event{1 metadata, 3 reason, 4 message} (involvedObject etc. omitted)
    raw = pb_bytes(1, object_meta(name, namespace, **meta)) + pb_bytes(3, reason) + pb_bytes(4, message)
    return unknown("Event", raw)


def range_allocation_pb(name, cidr: str, bitmap: bytes) -> bytes:
    # /registry/ranges/serviceips: RangeAllocation{1 metadata, 2 range, 3 data}
    raw = pb_bytes(1, object_meta(name)) + pb_bytes(2, cidr) + pb_bytes(3, bitmap)
    return unknown("RangeAllocation", raw)


def endpoints_pb(name, namespace, ip: str) -> bytes:
    # /registry/masterleases/<ip>: an Endpoints object; subsets{1 addresses{1 ip}}
    subset = pb_bytes(1, pb_bytes(1, ip))
    raw = pb_bytes(1, object_meta(name, namespace)) + pb_bytes(2, subset)
    return unknown("Endpoints", raw)


def micro_time(seconds: int) -> bytes:
    return pb_varint(1, seconds)  # MicroTime{1 seconds, 2 nanos}; nanos omitted (0)


def lease_pb(name, namespace, holder: str, renew: int, duration=40, **meta) -> bytes:
    """coordination.k8s.io/v1 Lease{1 metadata, 2 spec}: what node heartbeats rewrite every
    10 s (/registry/leases/kube-node-lease/<node>). LeaseSpec{1 holderIdentity,
    2 leaseDurationSeconds, 3 acquireTime, 4 renewTime}."""
    spec = pb_bytes(1, holder) + pb_varint(2, duration) + pb_bytes(3, micro_time(FIXED_EPOCH))
    spec += pb_bytes(4, micro_time(renew))
    raw = pb_bytes(1, object_meta(name, namespace, **meta)) + pb_bytes(2, spec)
    return unknown("Lease", raw, api_version="coordination.k8s.io/v1")


def _json(obj) -> bytes:
    # Go's encoding/json: compact, struct field order, trailing newline from json.Encoder.
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"


def secret_json(name, namespace, data: dict, type_="Opaque") -> bytes:
    """A Secret as written with --storage-media-type=application/json."""
    return _json({
        "kind": "Secret",
        "apiVersion": "v1",
        "metadata": {"name": name, "namespace": namespace},
        "data": {k: base64.b64encode(data[k]).decode() for k in sorted(data)},
        "type": type_,
    })


def pod_json(name, namespace, image="registry.k8s.io/pause:3.9", node="node-1") -> bytes:
    return _json({
        "kind": "Pod",
        "apiVersion": "v1",
        "metadata": {"name": name, "namespace": namespace, "uid": object_uid(namespace, name),
                     "creationTimestamp": "2023-11-14T22:13:20Z"},
        "spec": {"containers": [{"name": "main", "image": image}], "nodeName": node},
        "status": {"phase": "Running"},
    })


# --------------------------------------------------------------------------------------------
# Encryption providers (§2-§6). Each returns the complete etcd value: prefix + payload.
# --------------------------------------------------------------------------------------------

ENC = b"k8s:enc:"


def prefix(provider: str, name: str, api="v1") -> bytes:
    return ENC + f"{provider}:{api}:{name}:".encode()


def cbc_encrypt(key: bytes, plaintext: bytes, rand=os.urandom) -> bytes:
    """IV(16) || AES-CBC(PKCS#7(plaintext)) - the aescbc payload without prefix."""
    iv = rand(16)
    padder = padding.PKCS7(128).padder()
    padded = padder.update(plaintext) + padder.finalize()
    enc = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    return iv + enc.update(padded) + enc.finalize()


def cbc_decrypt_raw(key: bytes, payload: bytes) -> bytes:
    """Decrypt without unpadding (to test apiserver's padding rules on garbage)."""
    dec = Cipher(algorithms.AES(key), modes.CBC(payload[:16])).decryptor()
    return dec.update(payload[16:]) + dec.finalize()


def cbc_padding_ok(key: bytes, payload: bytes) -> bool:
    """The apiserver's check (aes.go cbc): p != 0, p <= len, last p bytes all equal p.
    Note p > 16 is accepted there, unlike strict PKCS#7."""
    result = cbc_decrypt_raw(key, payload)
    if not result:
        return False
    p = result[-1]
    return p != 0 and p <= len(result) and all(b == p for b in result[-p:])


def gcm_seal(key: bytes, plaintext: bytes, aad: bytes, rand=os.urandom, nonce=None) -> bytes:
    """nonce(12) || ciphertext || tag(16), Go cipher.NewGCM layout."""
    nonce = nonce if nonce is not None else rand(12)
    return nonce + AESGCM(key).encrypt(nonce, plaintext, aad)


def gcm_open(key: bytes, data: bytes, aad: bytes) -> bytes:
    return AESGCM(key).decrypt(data[:12], data[12:], aad)


def aescbc(name: str, key: bytes, plaintext: bytes, rand=os.urandom) -> bytes:
    return prefix("aescbc", name) + cbc_encrypt(key, plaintext, rand)


def aesgcm(name: str, key: bytes, plaintext: bytes, etcd_key: bytes, rand=os.urandom) -> bytes:
    return prefix("aesgcm", name) + gcm_seal(key, plaintext, etcd_key, rand)


def secretbox(name: str, key: bytes, plaintext: bytes, rand=os.urandom) -> bytes:
    # PyNaCl's encrypt returns nonce || MAC || ct, which is Go's nonce || secretbox.Seal(...).
    return prefix("secretbox", name) + bytes(nacl.secret.SecretBox(key).encrypt(plaintext, rand(24)))


def secretbox_open(key: bytes, payload: bytes) -> bytes:
    return nacl.secret.SecretBox(key).decrypt(payload[24:], payload[:24])


# ---- KMS ------------------------------------------------------------------------------------

# Fixed KEK of the pretend KMS (both v1 "legacy" and v2 "vault" use it). A test plugin
# unwraps ciphertext c as AES-256-GCM(KMS_KEK): nonce = c[:12], ct||tag = c[12:], no AAD.
KMS_KEK = hashlib.sha256(b"etcd-audit-fixture-kms-kek").digest()
KMS_KEY_ID = "kek-1"


def kms_wrap(secret: bytes, rand=os.urandom, kek=KMS_KEK) -> bytes:
    return gcm_seal(kek, secret, b"", rand)


def kms_unwrap(wrapped: bytes, kek=KMS_KEK) -> bytes:
    return gcm_open(kek, wrapped, b"")


def kms_v1(name: str, plaintext: bytes, etcd_key: bytes, rand=os.urandom, dek=None, cbc=False) -> bytes:
    """uint16_be(len(encDEK)) || encDEK || data. data is AES-GCM with AAD = etcd key (what
    1.25+ writes) or, with cbc=True, AES-CBC as 1.24 wrote (read back through the fallback,
    which marks it stale)."""
    dek = dek if dek is not None else rand(32)
    enc_dek = kms_wrap(dek, rand)
    data = cbc_encrypt(dek, plaintext, rand) if cbc else gcm_seal(dek, plaintext, etcd_key, rand)
    return prefix("kms", name) + struct.pack(">H", len(enc_dek)) + enc_dek + data


AES_GCM_KEY = 0
HKDF_SHA256_XNONCE_AES_GCM_SEED = 1


def encrypted_object(encrypted_data: bytes, key_id: str, encrypted_dek_source: bytes,
                     annotations=None, source_type=0) -> bytes:
    """kmsv2 EncryptedObject proto3: empty fields and type 0 are omitted."""
    out = b""
    if encrypted_data:
        out += pb_bytes(1, encrypted_data)
    if key_id:
        out += pb_bytes(2, key_id)
    if encrypted_dek_source:
        out += pb_bytes(3, encrypted_dek_source)
    out += pb_map(4, annotations or {})
    if source_type:
        out += pb_varint(5, source_type)
    return out


def xnonce_key(seed: bytes, info: bytes) -> bytes:
    """HKDF-SHA256 Expand only (PRK = seed, no Extract/salt), L = 32 (aes_extended_nonce.go)."""
    return HKDFExpand(hashes.SHA256(), 32, info).derive(seed)


_gcm_counter = [1_000_000_001]  # apiserver's unique-key GCM nonce counter starts at 1e9+1


def kms_v2(name: str, plaintext: bytes, etcd_key: bytes, key_id=KMS_KEY_ID, source_type=1,
           rand=os.urandom, annotations=None, secret=None) -> bytes:
    """Type 1 (1.29+ writes): seed(32); encryptedData = info(32) || nonce(12) || ct || tag with
    key = HKDF-Expand(seed, info). Type 0 (1.27/1.28): DEK(32), encryptedData = plain GCM whose
    nonce is 4 random bytes || uint64 LE counter."""
    secret = secret if secret is not None else rand(32)
    if source_type == HKDF_SHA256_XNONCE_AES_GCM_SEED:
        info = rand(32)
        data = info + gcm_seal(xnonce_key(secret, info), plaintext, etcd_key, rand)
    else:
        nonce = rand(4) + struct.pack("<Q", _gcm_counter[0])
        _gcm_counter[0] += 1
        data = gcm_seal(secret, plaintext, etcd_key, nonce=nonce)
    obj = encrypted_object(data, key_id, kms_wrap(secret, rand), annotations, source_type)
    return prefix("kms", name, "v2") + obj


# --------------------------------------------------------------------------------------------
# Self-test: the official vectors (§10) and round trips of every writer above
# --------------------------------------------------------------------------------------------


def selftest():
    # §10.1 TestGCMLegacyDataCompatibility
    ct = bytes.fromhex("9f27c8fcea8a58c467d8e437dbf2d85955f9b4bd912f4ef967d788a0cb07797d"
                       "ac0a3f0a0845605ca85ac8562b4ae1")
    assert gcm_open(b"snorlax_awesomes", ct, b"bamboo") == b"pandas are the best"

    # §10.2 TestExtendedNonceGCMLegacyDataCompatibility
    seed = bytes.fromhex("5d40323a820ff95561675e3b95e81867c5fdd561d35a88a2d08b08aa9d4fcf5c")
    data = bytes.fromhex("2442759e33945fbad709db577a0f037fd8a709fc76979b8942209debcecb9d57"
                         "efe3d6ff6a1ef6ee9a5003b9833b3043cec1e47b35175b151107a8d2416b0e29"
                         "6bbf66b5d102fcefdf9a78f293d271")
    want = bytes.fromhex("6e58b7659c304b0c382f42f16bd700465def1dead80bf6f1bf1d52073bdb0c00")
    key = xnonce_key(seed, data[:32])
    assert key == want, key.hex()
    assert key == hmac.new(seed, data[:32] + b"\x01", hashlib.sha256).digest()
    assert gcm_open(key, data[32:], b"bamboo") == b"pandas are the best"

    # Protobuf envelope shape from §9: k8s\0 0a <len>{0a 02 v1 12 06 Secret} 12 <len> ... 1a 00 22 00
    s = secret_pb("a", "b", {"k": b"v"})
    assert s.startswith(b"k8s\x00\x0a\x0c\x0a\x02v1\x12\x06Secret\x12") and s.endswith(b"\x1a\x00\x22\x00")
    assert varint(300) == b"\xac\x02" and varint(-1) == b"\xff" * 9 + b"\x01"

    # Round trips of every provider writer.
    k32, ek = bytes(range(32)), b"/registry/secrets/ns/name"
    v = aescbc("k", k32, s)[len(prefix("aescbc", "k")):]
    assert cbc_decrypt_raw(k32, v)[: len(s)] == s and cbc_padding_ok(k32, v)
    v = aesgcm("k", k32[:24], s, ek)
    assert gcm_open(k32[:24], v[len(prefix("aesgcm", "k")):], ek) == s
    v = secretbox("k", k32, s)
    assert secretbox_open(k32, v[len(prefix("secretbox", "k")):]) == s
    v = kms_v1("legacy", s, ek)[len(prefix("kms", "legacy")):]
    n = struct.unpack(">H", v[:2])[0]
    assert gcm_open(kms_unwrap(v[2:2 + n]), v[2 + n:], ek) == s
    for t in (0, 1):
        v = kms_v2("vault", s, ek, source_type=t, annotations={"a.example.com": b"x"})
        fields = {f: val for f, _, val in pb_parse(v[len(prefix("kms", "vault", "v2")):])}
        secret = kms_unwrap(fields[3])
        assert fields[2] == KMS_KEY_ID.encode() and fields.get(5, 0) == t
        d = fields[1]
        got = gcm_open(xnonce_key(secret, d[:32]), d[32:], ek) if t else gcm_open(secret, d, ek)
        assert got == s
    return True


# --------------------------------------------------------------------------------------------
# Minimal etcd v3 client over the JSON gRPC gateway (etcd 3.4 and 3.5 both serve /v3/)
# --------------------------------------------------------------------------------------------


def _b64(b) -> str:
    if isinstance(b, str):
        b = b.encode()
    return base64.b64encode(b).decode()


class Etcd:
    """One keep-alive HTTP connection; every call returns the decoded JSON response."""

    def __init__(self, port: int, host="127.0.0.1"):
        self.conn = http.client.HTTPConnection(host, port, timeout=30)

    def call(self, path: str, body: dict) -> dict:
        self.conn.request("POST", "/v3/" + path, json.dumps(body), {"Content-Type": "application/json"})
        resp = self.conn.getresponse()
        data = resp.read()
        if resp.status != 200:
            raise RuntimeError(f"etcd {path}: HTTP {resp.status}: {data[:300]!r}")
        return json.loads(data)

    def put(self, key, value: bytes) -> int:
        """Returns the revision of the put (= the new mod_revision)."""
        return int(self.call("kv/put", {"key": _b64(key), "value": _b64(value)})["header"]["revision"])

    def delete(self, key) -> int:
        r = self.call("kv/deleterange", {"key": _b64(key)})
        assert int(r.get("deleted", 0)) == 1, f"delete {key!r}: {r}"
        return int(r["header"]["revision"])

    def txn_put(self, key, value: bytes, mod_revision=0) -> int:
        """Put the way kube-apiserver does (k8s.io/apiserver/pkg/storage/etcd3/store.go): a Txn
        If(ModRevision(key) == mod_revision).Then(OpPut). Creates (mod_revision 0) have no Else;
        updates have Else(OpGet). Returns the revision of the put; fails if the compare fails."""
        body = {"compare": [{"key": _b64(key), "target": "MOD", "result": "EQUAL", "mod_revision": str(mod_revision)}],
                "success": [{"request_put": {"key": _b64(key), "value": _b64(value)}}]}
        if mod_revision:
            body["failure"] = [{"request_range": {"key": _b64(key)}}]
        r = self.call("kv/txn", body)
        assert r.get("succeeded"), f"txn put {key!r}: compare failed: {r}"
        return int(r["header"]["revision"])

    def txn_delete(self, key, mod_revision: int) -> int:
        """Delete as the apiserver does: Txn If(ModRevision == rev).Then(OpDelete).Else(OpGet)."""
        body = {"compare": [{"key": _b64(key), "target": "MOD", "result": "EQUAL", "mod_revision": str(mod_revision)}],
                "success": [{"request_delete_range": {"key": _b64(key)}}],
                "failure": [{"request_range": {"key": _b64(key)}}]}
        r = self.call("kv/txn", body)
        assert r.get("succeeded"), f"txn delete {key!r}: compare failed: {r}"
        assert int(r["responses"][0]["response_delete_range"].get("deleted", 0)) == 1, r
        return int(r["header"]["revision"])

    def version(self) -> dict:
        """GET /version: {"etcdserver": ..., "etcdcluster": ...} ("not_decided" until the
        leader has set the cluster version through raft)."""
        self.conn.request("GET", "/version")
        resp = self.conn.getresponse()
        return json.loads(resp.read())

    def compact(self, revision: int):
        self.call("kv/compaction", {"revision": revision, "physical": True})

    def get(self, key, prefix=False) -> list:
        """Returns [{key, value, create_revision, mod_revision, version}] with bytes decoded."""
        key = key.encode() if isinstance(key, str) else key
        body = {"key": _b64(key)}
        if prefix:
            end = bytearray(key)
            end[-1] += 1
            body["range_end"] = _b64(bytes(end))
        kvs = self.call("kv/range", body).get("kvs", [])
        return [{"key": base64.b64decode(kv["key"]), "value": base64.b64decode(kv.get("value", "")),
                 "create_revision": int(kv["create_revision"]), "mod_revision": int(kv["mod_revision"]),
                 "version": int(kv["version"])} for kv in kvs]

    def revision(self) -> int:
        return int(self.call("kv/range", {"key": _b64(b"\x00"), "count_only": True})["header"]["revision"])


if __name__ == "__main__":
    selftest()
    print("k8senc selftest: ok")
