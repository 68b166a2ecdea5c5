#!/usr/bin/env python3
"""The breach-impact scenario (`etcd-audit exposure`): Secrets of every risk class, written the way
a cluster's history leaves them (plaintext before encryption was enabled, a rewrite, deletes, a
physical compaction), and what each attacker model can read in the files etcd left behind.
Values are sealed here with `cryptography` through k8senc.py, never by the code under test, and
expected.json is computed from the files with boltread.py and walread.py (never with etcd or
etcd-audit).

    exposure.py write --port P --out DIR    # the writes into a running etcd; DIR/config.yaml, DIR/writes.json
    exposure.py finish DIR                  # DIR/expected.json from DIR/snapshot.db and DIR/datadir

Models (what the holder of the file has besides it):
- backup: plaintext anywhere, and values sealed with a key the Kubernetes docs publish (the
  config names it; the holder can try the docs' keys without it);
- backup+keys: also every key of config.yaml.
The `lost` key is in no config: what it sealed is readable under no model.
"""
import argparse
import base64
import glob
import hashlib
import json
import os
import random
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import k8senc as k  # noqa: E402
from boltread import Bolt  # noqa: E402
from forensics import decode_revision  # noqa: E402
from walread import read_wal  # noqa: E402

P = "/registry"
MARK = "ETCDAUDIT-SECRET-exposure-"
HEAD = "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\n"
DOCS_KEY = base64.b64decode("c2VjcmV0IGlzIHNlY3VyZQ==")  # encrypt-data.md: anyone has it
KEYS = {
    "key-a": hashlib.sha256(b"etcd-audit-fixture-exposure-key-a").digest(),
    "key-b": hashlib.sha256(b"etcd-audit-fixture-exposure-key-b").digest(),
    "docs": DOCS_KEY,
    "lost": hashlib.sha256(b"etcd-audit-fixture-exposure-lost").digest(),
}
# Which model reads a value sealed with each key (None: no model).
MODEL_OF = {None: "backup", "docs": "backup", "key-a": "backup+keys", "key-b": "backup+keys", "lost": None}
LADDER = ["backup", "backup+keys"]


def b64(b: bytes) -> str:
    return base64.b64encode(b).decode()


def config_text() -> str:
    return (HEAD + "resources:\n- resources: [secrets]\n  providers:\n"
            f"  - aescbc:\n      keys:\n      - name: key-a\n        secret: {b64(KEYS['key-a'])}\n"
            f"      - name: docs\n        secret: {b64(KEYS['docs'])}\n"
            f"  - aesgcm:\n      keys:\n      - name: key-b\n        secret: {b64(KEYS['key-b'])}\n"
            "  - identity: {}\n")


def write(port: int, out: str):
    etcd, rand = k.Etcd(port), random.Random("exposure").randbytes
    writes = []

    def put(resource, ns, name, data, type_=None, sealed=None, version=1):
        key = f"{P}/{resource}/{ns}/{name}"
        marked = {dk: f"{MARK}{ns}-{name}-{dk}-v{version}".encode() + base64.b64encode(rand(96)) for dk in data}
        if resource == "secrets":
            pt = k.secret_pb(name, ns, marked, type_=type_)
        else:
            pt = k.configmap_pb(name, ns, {dk: v.decode() for dk, v in marked.items()})
        if sealed is None:
            value = pt
        elif sealed == "key-b":
            value = k.aesgcm(sealed, KEYS[sealed], pt, key.encode(), rand)
        else:
            value = k.aescbc(sealed, KEYS[sealed], pt, rand)
        rev = etcd.put(key, value)
        writes.append({"key": key, "mod_revision": rev, "sealed": sealed, "type": type_,
                       "data_keys": sorted(data), "value_b64": b64(value)})
        return rev

    def delete(resource, ns, name):
        key = f"{P}/{resource}/{ns}/{name}"
        writes.append({"key": key, "mod_revision": etcd.delete(key), "deleted": True})

    # 1. Before encryption at rest: everything is plaintext.
    sa = ("kube-system", "default-token-x7k2p", "kubernetes.io/service-account-token", ["token", "ca.crt", "namespace"])
    boot = ("kube-system", "bootstrap-token-abcdef", "bootstrap.kubernetes.io/token",
            ["token-id", "token-secret", "usage-bootstrap-authentication"])
    app = ("default", "app-settings", "Opaque", ["config.yaml"])
    for ns, name, t, dks in (sa, boot, app):
        put("secrets", ns, name, dks, t)
    put("secrets", "prod", "db-credentials", ["username", "password"], "Opaque")
    put("secrets", "default", "registry-old", [".dockerconfigjson"], "kubernetes.io/dockerconfigjson")
    for n in range(1, 13):  # rewritten before the compaction point: plaintext only in free pages and the WAL
        put("secrets", "compacted", f"s{n}", ["password", "tls.key"], "Opaque")
    for n in range(1, 4):  # deleted before the compaction point
        put("secrets", "gone", f"s{n}", ["api-key"], "Opaque")
    put("configmaps", "default", "db-config", ["DB_PASSWORD", "DB_HOST"])
    put("configmaps", "default", "web-content", ["index.html"])
    for n in range(1, 4):
        delete("secrets", "gone", f"s{n}")
    # 2. Encryption enabled (config.yaml): the compacted namespace is rewritten.
    for n in range(1, 13):
        put("secrets", "compacted", f"s{n}", ["password", "tls.key"], "Opaque", sealed="key-a", version=2)
    compact_rev = etcd.revision()
    # 3. After the compaction point: more rewrites, a delete, and new encrypted Secrets.
    put("secrets", "prod", "db-credentials", ["username", "password"], "Opaque", sealed="key-a", version=2)
    delete("secrets", "default", "registry-old")
    put("secrets", "web", "tls-frontend", ["tls.crt", "tls.key"], "kubernetes.io/tls", sealed="key-b")
    put("secrets", "default", "docs-sealed", ["api-token"], "Opaque", sealed="docs")
    put("secrets", "vault", "lost", ["password"], "Opaque", sealed="lost")
    etcd.compact(compact_rev)
    for n in range(1, 4):  # the cluster goes on: a few writes after the compaction reuse freed pages
        put("configmaps", "default", "web-content", ["index.html"], version=n + 1)
    with open(os.path.join(out, "config.yaml"), "w") as f:
        f.write(config_text())
    with open(os.path.join(out, "writes.json"), "w") as f:
        json.dump({"compact_revision": compact_rev, "writes": writes}, f, indent=1)
    print(f"{len(writes)} writes, compacted at {compact_rev}, revision {etcd.revision()}")


def places(path: str, wal_dir, writes: dict):
    """{key: {place: [revisions or raft indexes]}} of every in-scope value in the files, with the
    key it was sealed with."""
    b = Bolt(path)
    rows = [decode_revision(rk, v) for rk, v in b.buckets[b"key"]]
    rows = [r for r in rows if r and r["key"].startswith((f"{P}/secrets/", f"{P}/configmaps/"))]
    newest = {}
    for r in rows:
        if r["key"] not in newest or r["main"] > newest[r["key"]]["main"]:
            newest[r["key"]] = r
    found = []
    for r in rows:
        if r["tombstone"]:
            continue
        live = newest[r["key"]] is r
        found.append((r["key"], "live" if live else "history", r["main"]))
    in_tree = {rk for rk, _ in b.buckets[b"key"]}
    seen = set()
    for _, eflags, rk, value in b.carve_leaves(b.unreachable()):
        r = decode_revision(rk, value) if not eflags & 1 and rk not in in_tree else None
        if r and not r["tombstone"] and r["key"].startswith(f"{P}/") and (r["key"], r["main"]) not in seen:
            seen.add((r["key"], r["main"]))
            found.append((r["key"], "residue", r["main"]))
    if wal_dir:
        by_value = {w["value_b64"]: w for w in writes}
        for o in read_wal(sorted(glob.glob(os.path.join(wal_dir, "member", "wal", "*.wal"))))["ops"]:
            if o["op"] == "put" and o["key"].decode().startswith(f"{P}/"):
                w = by_value[b64(o["value"])]
                found.append((w["key"], "wal", o["raft_index"], w["mod_revision"]))
    return b, found


def finish(out: str):
    doc = json.load(open(os.path.join(out, "writes.json")))
    writes = [w for w in doc["writes"] if not w.get("deleted")]
    by_rev = {w["mod_revision"]: w for w in writes}
    expected = {"schema": "etcd-audit.fixture/v1", "compact_revision": doc["compact_revision"],
                "models": {}, "objects": {}, "never_readable": [], "never_printed": [MARK]}
    for material in KEYS.values():
        expected["never_printed"] += [b64(material), material.hex()]
    for name, path, wal in [("snapshot", "snapshot.db", None), ("datadir", "datadir/member/snap/db", "datadir")]:
        _, found = places(os.path.join(out, path), wal and os.path.join(out, wal), writes)
        live = {key for key, place, *_ in found if place == "live"}
        per_model = {m: {} for m in LADDER}
        for key, place, n, *rev in found:
            w = by_rev[rev[0] if rev else n]
            assert w["key"] == key, (w, key)
            model = MODEL_OF[w["sealed"]]
            if model is None:
                continue
            for m in LADDER[LADDER.index(model):]:
                per_model[m].setdefault(key, {}).setdefault(place, []).append(n)
        for m, objs in per_model.items():
            for o in objs.values():
                for v in o.values():
                    v.sort()
            expected["models"].setdefault(m, {})[name] = objs
        expected.setdefault("live", {})[name] = sorted(live)
    for w in writes:
        kind = "secret" if "/secrets/" in w["key"] else "configmap"
        o = expected["objects"].setdefault(w["key"], {"kind": kind, "type": w["type"], "data_keys": []})
        o["data_keys"] = sorted(set(o["data_keys"]) | set(w["data_keys"]))
    readable = set(expected["models"]["backup+keys"]["datadir"])
    expected["never_readable"] = sorted(set(expected["objects"]) - readable)
    with open(os.path.join(out, "expected.json"), "w") as f:
        json.dump(expected, f, indent=1, sort_keys=True)
    for m in LADDER:
        for name in ("snapshot", "datadir"):
            objs = expected["models"][m][name]
            print(f"{m} {name}: {len(objs)} objects readable, places "
                  f"{sorted({p for o in objs.values() for p in o})}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    w = sub.add_parser("write")
    w.add_argument("--port", type=int, required=True)
    w.add_argument("--out", required=True)
    f = sub.add_parser("finish")
    f.add_argument("out")
    a = ap.parse_args()
    if a.cmd == "write":
        write(a.port, a.out)
    else:
        finish(a.out)


if __name__ == "__main__":
    main()
