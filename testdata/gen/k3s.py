#!/usr/bin/env python3
"""Write a k3s server's etcd content into a running etcd, as k3s would: bootstrap data
sealed by the server token (written here from docs/formats/k3s-bootstrap.md with
`cryptography`, not by the code under test), and Secrets encrypted with the keys of the
EncryptionConfiguration inside it, rotated once (the old key second).

    k3s.py token  --out DIR                 # DIR/token (K10 form), DIR/wrong-token
    k3s.py sealed --port P --out DIR        # the scenario; DIR/expected.json
    k3s.py empty  --port P --out DIR        # legacy: sealed with the empty passphrase, older
                                            # JSON layout, mid-rotation; DIR/empty-expected.json

Every key, password and private key is derived from fixed names (below), so a test can
recompute any of them and grep every output for them.
"""

import argparse
import base64
import hashlib
import json
import os
import random
import sys

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import k8senc as k  # noqa: E402

MARK = "ETCDAUDIT-SECRET-"
PASSWORD = hashlib.sha256(b"etcd-audit-fixture-k3s-token").hexdigest()[:32]
OLD_PASSWORD = hashlib.sha256(b"etcd-audit-fixture-k3s-old-token").hexdigest()[:32]
CA_HASH = hashlib.sha256(b"etcd-audit-fixture-k3s-server-ca.crt").hexdigest()
TOKEN = f"K10{CA_HASH}::server:{PASSWORD}"
NODE_PASSWORD = hashlib.sha256(b"etcd-audit-fixture-k3s-node").hexdigest()[:32]
OLD_KEY, NEW_KEY = "aescbckey", "aescbckey-2026-11-01T00:00:00Z"
TIMESTAMP = "2026-11-01T00:00:00.123456789Z"


def key_material(name: str) -> bytes:
    return hashlib.sha256(b"etcd-audit-fixture-k3s-key:" + name.encode()).digest()


def token_hash(passphrase: str) -> str:
    return hashlib.sha256(passphrase.encode()).hexdigest()[:12]


def seal(plain: bytes, passphrase: str, rand) -> bytes:
    """`<16 hex salt>:<base64(nonce || AES-256-GCM(plain) || tag)>`; the salt's ASCII bytes
    are the PBKDF2 salt (PBKDF2-HMAC-SHA1, 4096 rounds, 32 bytes)."""
    salt = rand(8).hex().encode()
    key = PBKDF2HMAC(algorithm=hashes.SHA1(), length=32, salt=salt, iterations=4096).derive(passphrase.encode())
    nonce = rand(12)
    return salt + b":" + base64.b64encode(nonce + AESGCM(key).encrypt(nonce, plain, None))


def encryption_config(keys) -> bytes:
    """cred/encryption-config.json as k3s writes it: compact JSON, secrets only."""
    cfg = {"kind": "EncryptionConfiguration", "apiVersion": "apiserver.config.k8s.io/v1",
           "resources": [{"resources": ["secrets"], "providers": [
               {"aescbc": {"keys": [{"name": n, "secret": base64.b64encode(key_material(n)).decode()} for n in keys]}},
               {"identity": {}}]}]}
    return json.dumps(cfg, separators=(",", ":")).encode()


def pem(kind: str, what: str) -> bytes:
    return f"-----BEGIN {kind}-----\n{MARK}k3s-{what}\n-----END {kind}-----\n".encode()


def bootstrap_files(config: bytes, stage: str) -> dict:
    return {
        "ServerCA": pem("CERTIFICATE", "server-ca"),
        "ServerCAKey": pem("EC PRIVATE KEY", "server-ca-key"),
        "ClientCA": pem("CERTIFICATE", "client-ca"),
        "ClientCAKey": pem("EC PRIVATE KEY", "client-ca-key"),
        "ServiceKey": pem("RSA PRIVATE KEY", "service-account-key"),
        "PasswdFile": f"{PASSWORD},server,server,k3s:server\n{NODE_PASSWORD},node,node,k3s:agent\n".encode(),
        "EncryptionConfig": config,
        "EncryptionHash": f"{stage}-{hashlib.sha256(config).hexdigest()}".encode(),
    }


def go_json(files: dict, layout: str) -> bytes:
    """Go's json.Encoder of map[string]File (or the older map[string][]byte): compact, keys
    sorted, a trailing newline."""
    if layout == "file":
        doc = {n: {"Timestamp": TIMESTAMP, "Content": base64.b64encode(b).decode()} for n, b in files.items()}
    else:
        doc = {n: base64.b64encode(b).decode() for n, b in files.items()}
    return json.dumps(doc, separators=(",", ":"), sort_keys=True).encode() + b"\n"


def secret(etcd, rand, ns, name, key_name, type_="Opaque", data_keys=("password",)):
    etcd_key = f"/registry/secrets/{ns}/{name}"
    data = {d: f"{MARK}k3s-{ns}-{name}-{d}".encode() for d in data_keys}
    value = k.aescbc(key_name, key_material(key_name), k.secret_pb(name, ns, data, type_), rand)
    rev = etcd.put(etcd_key, value)
    return {"key": etcd_key, "key_name": key_name, "stale": key_name != NEW_KEY, "mod_revision": rev}


def sealed(args):
    etcd, rand = k.Etcd(args.port), random.Random("k3s-sealed").randbytes
    # An old token's bootstrap, re-sealed by `k3s token rotate` and deleted: history keeps it.
    old_config = encryption_config([OLD_KEY])
    old_key = f"/bootstrap/{token_hash(OLD_PASSWORD)}"
    etcd.put(old_key, seal(go_json(bootstrap_files(old_config, "start"), "file"), OLD_PASSWORD, rand))
    entries = [secret(etcd, rand, "kube-system", "old-token", OLD_KEY, "bootstrap.kubernetes.io/token",
                      ("token-id", "token-secret"))]
    # The current bootstrap: rotated once, the new key first, the old one second.
    config = encryption_config([NEW_KEY, OLD_KEY])
    boot_key = f"/bootstrap/{token_hash(PASSWORD)}"
    etcd.put(boot_key, seal(go_json(bootstrap_files(config, "reencrypt_finished"), "file"), PASSWORD, rand))
    etcd.delete(old_key)
    # A lock placeholder: an empty value is not data.
    lock_key = f"/bootstrap/{token_hash('lock-placeholder')}"
    etcd.put(lock_key, b"")
    for ns, name in [("default", "db"), ("kube-system", "k3s-serving"), ("apps", "registry"),
                     ("apps", "api-token")]:
        entries.append(secret(etcd, rand, ns, name, NEW_KEY))
    expected = {"token_hash": token_hash(PASSWORD), "legacy_token_hash": token_hash(TOKEN),
                "bootstrap_key": boot_key, "old_bootstrap_key": old_key, "lock_key": lock_key,
                "contents": sorted(bootstrap_files(config, "").keys()),
                "keys": {n: "sha256:" + hashlib.sha256(key_material(n)).hexdigest()[:16] for n in (NEW_KEY, OLD_KEY)},
                "secrets": entries,
                "never_printed": [PASSWORD, OLD_PASSWORD, NODE_PASSWORD, TOKEN, f"{MARK}k3s-"]
                + [base64.b64encode(key_material(n)).decode() for n in (NEW_KEY, OLD_KEY)]
                + [key_material(n).hex() for n in (NEW_KEY, OLD_KEY)]}
    with open(os.path.join(args.out, "expected.json"), "w") as f:
        json.dump(expected, f, indent=1, sort_keys=True)


def empty(args):
    etcd, rand = k.Etcd(args.port), random.Random("k3s-empty").randbytes
    config = encryption_config([NEW_KEY, OLD_KEY])
    boot_key = f"/bootstrap/{token_hash('')}"
    etcd.put(boot_key, seal(go_json(bootstrap_files(config, "reencrypt_active"), "bytes"), "", rand))
    entries = [secret(etcd, rand, "default", "db", NEW_KEY), secret(etcd, rand, "default", "legacy", OLD_KEY)]
    expected = {"bootstrap_key": boot_key, "secrets": entries, "stage": "reencrypt_active"}
    with open(os.path.join(args.out, "empty-expected.json"), "w") as f:
        json.dump(expected, f, indent=1, sort_keys=True)


def tokens(args):
    with open(os.path.join(args.out, "token"), "w") as f:
        f.write(TOKEN + "\n")
    with open(os.path.join(args.out, "wrong-token"), "w") as f:
        f.write(f"K10{CA_HASH}::server:{'0' * 32}\n")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=["token", "sealed", "empty"])
    p.add_argument("--port", type=int)
    p.add_argument("--out", required=True)
    args = p.parse_args()
    {"token": tokens, "sealed": sealed, "empty": empty}[args.mode](args)


if __name__ == "__main__":
    main()
