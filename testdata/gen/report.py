#!/usr/bin/env python3
"""A cluster for the HTML report: at least N Secrets in every verdict class, over several
namespaces, with stale values, plaintext left in history and a node Lease (sealed here with
`cryptography` through k8senc.py, never by the code under test).

    report.py --port P --out DIR [--per-class N]    # DIR/config.yaml; the data goes into the etcd at P

Classes: plaintext; decryptable (three quarters with the write key key-new, a quarter with
key-old: stale); unknown-key (a key named `retired` no config holds); undecryptable (named
key-new, sealed with other bytes); malformed (the key-new prefix and 7 bytes). Plus N/10
Secrets written in plaintext, then rewritten with key-new (their plaintext stays in history).
"""
import argparse
import base64
import hashlib
import os
import random
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import k8senc as k  # noqa: E402

P = "/registry"
NAMESPACES = ["payments", "web", "data", "monitoring", "ci", "kube-system"]
KEYS = {name: hashlib.sha256(f"etcd-audit-fixture-report-{name}".encode()).digest() for name in
        ["key-new", "key-old", "retired", "wrong"]}
UID = "44444444-4444-4444-8444-444444444444"
RENEW = 1795000000


def b64(b: bytes) -> str:
    return base64.b64encode(b).decode()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--per-class", type=int, default=400)
    a = ap.parse_args()
    etcd, rand = k.Etcd(a.port), random.Random("report").randbytes
    with open(os.path.join(a.out, "config.yaml"), "w") as f:
        f.write("apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n"
                "- resources: [secrets]\n  providers:\n  - aescbc:\n      keys:\n"
                f"      - name: key-new\n        secret: {b64(KEYS['key-new'])}\n"
                f"      - name: key-old\n        secret: {b64(KEYS['key-old'])}\n  - identity: {{}}\n")
    etcd.put(f"{P}/namespaces/kube-system", k.namespace_pb("kube-system", uid=UID))
    etcd.put(f"{P}/leases/kube-node-lease/node-1", k.lease_pb("node-1", "kube-node-lease", "node-1", RENEW))

    def secret(cls, n):
        ns, name = NAMESPACES[n % len(NAMESPACES)], f"{cls}-{n:04d}"
        pt = k.secret_pb(name, ns, {"password": f"ETCDAUDIT-SECRET-report-{cls}-{n}".encode()})
        return f"{P}/secrets/{ns}/{name}", pt

    n = a.per_class
    for i in range(n):
        key, pt = secret("plaintext", i)
        etcd.put(key, pt)
        key, pt = secret("decryptable", i)
        etcd.put(key, k.aescbc("key-old" if i % 4 == 3 else "key-new",
                               KEYS["key-old" if i % 4 == 3 else "key-new"], pt, rand))
        key, pt = secret("unknown", i)
        etcd.put(key, k.aescbc("retired", KEYS["retired"], pt, rand))
        key, pt = secret("undecryptable", i)
        etcd.put(key, k.aescbc("key-new", KEYS["wrong"], pt, rand))
        key, _ = secret("malformed", i)
        etcd.put(key, k.prefix("aescbc", "key-new") + rand(7))
    for i in range(n // 10):  # written before encryption, then rewritten: plaintext in history
        key, pt = secret("rotated", i)
        etcd.put(key, pt)
        etcd.put(key, k.aescbc("key-new", KEYS["key-new"], pt, rand))
    print(f"{5 * n + n // 10} Secrets, {n // 10} rewritten")


if __name__ == "__main__":
    main()
