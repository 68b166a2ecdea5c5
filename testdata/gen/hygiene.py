#!/usr/bin/env python3
"""Write the key-hygiene scenario into a running etcd (values sealed here with `cryptography`
and `pynacl` through k8senc.py, not by the code under test) and its configs.

    hygiene.py --port P --out DIR     # DIR/*.yaml, DIR/expected.json

Secrets under: a key printed in the Kubernetes docs (aescbc), a passphrase pasted as a key
(aescbc), a good random key (aesgcm) with two values sharing one nonce, and the docs' secretbox
example key. Configs: the one that reads them all, one with identity first, one with a KMS v1
provider, one that reuses a key under two names, and one that does not cover secrets.
"""
import argparse
import base64
import hashlib
import json
import os
import random
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import k8senc as k  # noqa: E402

MARK = "ETCDAUDIT-SECRET-"
DOCS_KEY = base64.b64decode("c2VjcmV0IGlzIHNlY3VyZQ==")  # 16 bytes, encrypt-data.md
DOCS_SB_KEY = base64.b64decode("YWJjZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXoxMjM0NTY=")  # 32 printable bytes
PASSPHRASE = b"Tr0ub4dor&3-correct-horse-batter"  # 32 printable bytes: a passphrase, not a key
GOOD = hashlib.sha256(b"etcd-audit-fixture-hygiene-good-key").digest()
HEAD = "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\n"


def b64(b: bytes) -> str:
    return base64.b64encode(b).decode()


def configs(out):
    main = (HEAD + "resources:\n- resources: [secrets]\n  providers:\n"
            f"  - aesgcm:\n      keys:\n      - name: good-key\n        secret: {b64(GOOD)}\n"
            f"  - aescbc:\n      keys:\n      - name: docs-key\n        secret: {b64(DOCS_KEY)}\n"
            f"      - name: passphrase-key\n        secret: {b64(PASSPHRASE)}\n"
            f"  - secretbox:\n      keys:\n      - name: docs-sb\n        secret: {b64(DOCS_SB_KEY)}\n"
            "  - identity: {}\n")
    identity_first = (HEAD + "resources:\n- resources: [secrets]\n  providers:\n  - identity: {}\n"
                      f"  - secretbox:\n      keys:\n      - name: good-sb\n        secret: {b64(GOOD)}\n")
    kms_v1 = (HEAD + "resources:\n- resources: [secrets]\n  providers:\n"
              "  - kms:\n      name: legacy-kms\n      endpoint: unix:///run/kms-legacy.sock\n      cachesize: 100\n"
              "  - identity: {}\n")
    reused = (HEAD + "resources:\n- resources: [secrets]\n  providers:\n"
              f"  - secretbox:\n      keys:\n      - name: sb-2026\n        secret: {b64(GOOD)}\n"
              f"      - name: sb-copy\n        secret: {b64(GOOD)}\n  - identity: {{}}\n")
    uncovered = (HEAD + "resources:\n- resources: [configmaps]\n  providers:\n"
                 f"  - secretbox:\n      keys:\n      - name: cm\n        secret: {b64(GOOD)}\n  - identity: {{}}\n")
    for name, text in [("config-hygiene.yaml", main), ("config-identity-first.yaml", identity_first),
                       ("config-kms-v1.yaml", kms_v1), ("config-key-reused.yaml", reused),
                       ("config-uncovered.yaml", uncovered)]:
        with open(os.path.join(out, name), "w") as f:
            f.write(text)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--out", required=True)
    args = p.parse_args()
    os.makedirs(args.out, exist_ok=True)
    configs(args.out)
    etcd, rand = k.Etcd(args.port), random.Random("hygiene").randbytes

    def secret(name):
        return k.secret_pb(name, "default", {"password": f"{MARK}hygiene-{name}".encode()})

    def key(name):
        return f"/registry/secrets/default/{name}"

    etcd.put(key("docs-cbc"), k.aescbc("docs-key", DOCS_KEY, secret("docs-cbc"), rand))
    etcd.put(key("pasted"), k.aescbc("passphrase-key", PASSPHRASE, secret("pasted"), rand))
    shared = rand(12)
    for name in ["gcm-a", "gcm-b"]:
        payload = k.gcm_seal(GOOD, secret(name), key(name).encode(), nonce=shared)
        etcd.put(key(name), k.prefix("aesgcm", "good-key") + payload)
    etcd.put(key("gcm-c"), k.aesgcm("good-key", GOOD, secret("gcm-c"), key("gcm-c").encode(), rand))
    etcd.put(key("sb"), k.secretbox("docs-sb", DOCS_SB_KEY, secret("sb"), rand))
    never = [f"{MARK}hygiene-"]
    for material in [DOCS_KEY, DOCS_SB_KEY, PASSPHRASE, GOOD]:
        never += [b64(material), material.hex()]
    never.append(PASSPHRASE.decode())
    expected = {"nonce_reuse": [key("gcm-a"), key("gcm-b")], "never_printed": never,
                "public": ["aescbc:docs-key", "secretbox:docs-sb"], "weak": ["aescbc:passphrase-key"],
                "good_key_sha256": hashlib.sha256(GOOD).hexdigest()}
    with open(os.path.join(args.out, "expected.json"), "w") as f:
        json.dump(expected, f, indent=1, sort_keys=True)


if __name__ == "__main__":
    main()
