#!/usr/bin/env python3
"""Write the fixture scenarios into a running etcd and record what was written.

    populate.py basic     --port P --tag etcd35 --out DIR   # Kubernetes-shaped plaintext data
    populate.py scan      --port P --out DIR                # the verdict scenario (+ scan/ configs)
    populate.py openshift --port P --out DIR                # /kubernetes.io prefix
    populate.py forensics --port P --out DIR                # plaintext left behind (history, free pages, WAL)

Each writes DIR/<name>.expected.json from what it *knows* it wrote (revisions come from etcd's
put/delete responses), so tests never have to trust the auditor to describe the fixture.
Everything is derived from fixed seeds and fixed key material: reruns write the same logical
content (only etcd's own IDs, and therefore the db bytes, differ).
"""

import argparse
import base64
import hashlib
import json
import os
import random
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import k8senc as k  # noqa: E402

MARK = "ETCDAUDIT-SECRET-"


def seeded(seed: str):
    """rand(n) -> bytes from a seeded PRNG. Not secure; it only makes fixture nonces and
    filler reproducible."""
    rng = random.Random(seed)
    return rng.randbytes


def key_material(name: str, size: int) -> bytes:
    # Fixed, documented derivation so a test can recompute any key from its name.
    return hashlib.sha256(b"etcd-audit-fixture-key:" + name.encode()).digest()[:size]


def b64(b: bytes) -> str:
    return base64.b64encode(b).decode()


def filler(rand, n: int) -> bytes:
    """Printable filler (base64 text) so values look like certificates/tokens."""
    return base64.b64encode(rand(n * 3 // 4 + 3))[:n]


class Recorder:
    """Writes to etcd and keeps the revision history of every key it touched."""

    def __init__(self, etcd: k.Etcd, prefix="/registry"):
        self.etcd = etcd
        self.prefix = prefix
        self.revs = []  # every write, in order
        self.live = {}  # key -> index of its live revision in self.revs

    def put(self, key: str, value: bytes, **info) -> dict:
        return self._record_put(key, value, self.etcd.put(key, value), info)

    def _record_put(self, key: str, value: bytes, rev: int, info: dict) -> dict:
        prev = self.live.get(key)
        if prev is None:
            create, version = rev, 1
        else:
            create, version = self.revs[prev]["create_revision"], self.revs[prev]["version"] + 1
        r = dict(key=key, mod_revision=rev, create_revision=create, version=version, deleted=False, **info)
        r["_value"] = value
        self.live[key] = len(self.revs)
        self.revs.append(r)
        return r

    def delete(self, key: str) -> dict:
        return self._record_delete(key, self.etcd.delete(key))

    def _record_delete(self, key: str, rev: int) -> dict:
        del self.live[key]
        r = dict(key=key, mod_revision=rev, create_revision=0, version=0, deleted=True)
        self.revs.append(r)
        return r

    def entries(self):
        return [self.revs[i] for i in sorted(self.live.values())]

    def history(self, removed=()):
        """Non-live revisions still in the key bucket (removed = revisions compacted away)."""
        live = set(self.live.values())
        return [r for i, r in enumerate(self.revs) if i not in live and r["mod_revision"] not in removed]


def split_key(key: str, prefix: str):
    """(resource, namespace, name) for /<prefix>/<resource>/[<ns>/]<name>."""
    parts = key[len(prefix) + 1:].split("/")
    if len(parts) == 3:
        return parts[0], parts[1], parts[2]
    return parts[0], None, parts[-1]


ENTRY_FIELDS = ["key", "resource", "namespace", "name", "class", "provider", "key_name", "stale",
                "encoding", "mod_revision", "create_revision", "version", "marker"]


def entry_json(r: dict, prefix: str, history=False) -> dict:
    resource, ns, name = split_key(r["key"], prefix) if r["key"].startswith(prefix + "/") else (None, None, r["key"])
    out = {"key": r["key"], "resource": resource, "namespace": ns, "name": name}
    if r["deleted"]:
        out.update({"class": None, "provider": None, "key_name": None, "stale": None, "encoding": None})
    for f in ENTRY_FIELDS[4:]:
        if f not in out:
            out[f] = r.get(f)
    if history:
        out["deleted"] = r["deleted"]
    for extra in ("case", "note", "kms", "copied_from"):
        if r.get(extra) is not None:
            out[extra] = r[extra]
    return out


def dump(path: str, doc: dict):
    """JSON with one entry per line: readable in diffs, small on disk."""
    lines = ["{"]
    items = list(doc.items())
    for i, (key, val) in enumerate(items):
        comma = "," if i < len(items) - 1 else ""
        if isinstance(val, list) and val and isinstance(val[0], dict):
            inner = ",\n".join("  " + json.dumps(v, ensure_ascii=False) for v in val)
            lines.append(f" {json.dumps(key)}: [\n{inner}\n ]{comma}")
        else:
            lines.append(f" {json.dumps(key)}: {json.dumps(val, ensure_ascii=False)}{comma}")
    lines.append("}")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def summary(entries):
    out = {}
    for e in entries:
        c = e["class"] if e["class"] is not None else "tombstone"
        out[c] = out.get(c, 0) + 1
    return out


# =============================================================================================
# basic: Kubernetes-shaped plaintext data, history, deletes, a physical compaction
# =============================================================================================


def scenario_basic(etcd: k.Etcd, tag: str, out_dir: str):
    rand = seeded("basic-" + tag)
    rng = random.Random("basic-rng-" + tag)
    rec = Recorder(etcd)
    P = "/registry"
    namespaces = ["default", "kube-system", "kube-public", "kube-node-lease"] + [f"team-{i:02d}" for i in range(16)]

    def put_secret(ns, name, version, big=False):
        marker = f"{MARK}{tag}-basic-{ns}-{name}-v{version}"
        size = 20000 if big else rng.randrange(40, 300)
        data = {"password": marker.encode(), "token": filler(rand, size)}
        if rng.random() < 0.2:
            data["ca.crt"] = filler(rand, 200)
        t = "kubernetes.io/tls" if big else "Opaque"
        return rec.put(f"{P}/secrets/{ns}/{name}", k.secret_pb(name, ns, data, t), encoding="protobuf",
                       **{"class": "plaintext"}, marker=marker)

    def put_configmap(ns, name, big=False):
        marker = f"{MARK}{tag}-basic-cm-{ns}-{name}"
        size = 20000 if big else rng.randrange(30, 250)
        data = {"app.properties": marker + "\n" + filler(rand, size).decode(), "mode": "prod"}
        return rec.put(f"{P}/configmaps/{ns}/{name}", k.configmap_pb(name, ns, data), encoding="protobuf",
                       **{"class": "plaintext"}, marker=marker)

    for ns in namespaces:
        rec.put(f"{P}/namespaces/{ns}", k.namespace_pb(ns), encoding="protobuf", **{"class": "plaintext"})
    secrets, cms = [], []
    for i in range(400):
        ns, name = namespaces[i % len(namespaces)], f"app-{i:03d}-credentials"
        put_secret(ns, name, 1, big=(i % 200 == 199))  # 2 secrets of ~20 KB: overflow pages
        secrets.append((ns, name))
    for i in range(180):
        ns, name = namespaces[i % len(namespaces)], f"config-{i:03d}"
        put_configmap(ns, name, big=(i == 179))  # 1 configmap of ~20 KB
        cms.append((ns, name))
    for i in range(10):
        ns = namespaces[4 + i % 4]
        rec.put(f"{P}/pods/{ns}/web-{i}", k.pod_json(f"web-{i}", ns), encoding="json", **{"class": "plaintext"})
    # Many small events: enough leaves (> ~123) that the 4 KiB key bucket gets a 3-level tree.
    for i in range(400):
        ns, name = namespaces[i % len(namespaces)], f"web-{i % 10}.{0x17a0000 + i:x}"
        msg = "Successfully pulled image " + "x" * rng.randrange(20, 120)
        rec.put(f"{P}/events/{ns}/{name}", k.event_pb(name, ns, "Pulled", msg), encoding="protobuf",
                **{"class": "plaintext"})
    for key, value in ((f"{P}/ranges/serviceips", k.range_allocation_pb("", "10.96.0.0/12", rand(64))),
                       (f"{P}/masterleases/10.0.0.1", k.endpoints_pb("10.0.0.1", "", "10.0.0.1"))):
        rec.put(key, value, encoding="protobuf", **{"class": "plaintext"})

    def delete(batch):
        for ns, name in batch:
            rec.delete(f"{P}/{'secrets' if name.startswith('app-') else 'configmaps'}/{ns}/{name}")

    # Before the compaction point: rotate 50 secret values (the v1 revisions get compacted
    # away) and delete 25 keys (all their revisions get compacted away).
    for ns, name in secrets[:50]:
        put_secret(ns, name, 2)
    delete(secrets[100:120] + cms[:5])
    # The compaction revision must be a put (a tombstone exactly at C would be dropped too).
    compact_rev = put_secret("default", "compaction-point", 1)["mod_revision"]
    # After it: 50 more rotations and 25 more deletes; the older revisions stay as history.
    for ns, name in secrets[50:100]:
        put_secret(ns, name, 2)
    delete(secrets[120:140] + cms[5:10])
    etcd.compact(compact_rev)
    # Writes after the compaction reuse some of the pages it freed.
    for i in range(10):
        put_secret("default", f"after-compaction-{i}", 1)
    # What the apiserver's compactor writes: outside the prefix, a decimal revision, not an object.
    rec.put("compact_rev_key", str(compact_rev).encode(), note="not an object")

    removed = compacted(rec, compact_rev)
    # Compact rows (resource/namespace/name follow from the key; every object is plaintext).
    def row(r):
        return {f: r[f] for f in ("key", "mod_revision", "create_revision", "version", "deleted", "encoding", "marker")
                if r.get(f)}

    entries = [row(r) for r in rec.entries()]
    history = [row(r) for r in rec.history(removed)]
    removed_list = [row(r) for r in rec.revs if r["mod_revision"] in removed]
    dump(os.path.join(out_dir, f"{tag}-basic.expected.json"), {
        "schema": "etcd-audit.fixture/v1",
        "etcd_prefix": P,
        "revision": rec.revs[-1]["mod_revision"],
        "compact_revision": compact_rev,
        "note": "Nothing is encrypted: every object is class plaintext with the given encoding; rows "
                "without encoding are tombstones (deleted: true) or compact_rev_key (not an object). "
                "entries = live revision of every key written (all resources, plus compact_rev_key); "
                "history = other revisions still in the key bucket; removed_by_compaction = revisions "
                "deleted by the physical compaction (their bytes may survive in free pages: residue "
                "candidates). Rows are compact: resource/namespace/name follow from the key, deleted "
                "is only written when true.",
        "summary": {"entries": len(entries), "history": len(history), "removed_by_compaction": len(removed_list),
                    "entries_by_resource": count_by([entry_json(r, P) for r in rec.entries()], "resource")},
        "deleted": sorted(r["key"] for r in rec.revs if r["deleted"]),
        "entries": entries,
        "history": history,
        "removed_by_compaction": removed_list,
    })
    print(f"basic/{tag}: revision {rec.revs[-1]['mod_revision']}, compacted at {compact_rev}, "
          f"{len(entries)} live keys, {len(history)} history rows, {len(removed_list)} compacted away")


def count_by(entries, field):
    out = {}
    for e in entries:
        v = e[field] if e[field] is not None else "(outside prefix)"
        out[v] = out.get(v, 0) + 1
    return out


def compacted(rec: Recorder, c: int) -> set:
    """Revisions etcd's compaction at c deletes (mvcc keyIndex.compact): for each key every
    revision <= c except the newest one <= c, and that one too when it is a tombstone (the
    generation it ends is dropped)."""
    removed = set()
    by_key = {}
    for r in rec.revs:
        by_key.setdefault(r["key"], []).append(r)
    for revs in by_key.values():
        old = [r for r in revs if r["mod_revision"] <= c]
        if not old:
            continue
        for r in old[:-1]:
            removed.add(r["mod_revision"])
        if old[-1]["deleted"]:
            removed.add(old[-1]["mod_revision"])
    return removed


# =============================================================================================
# scan: one entry per verdict case
# =============================================================================================

# Fixture key name -> size in bytes. The material is key_material(name, size), fixed forever.
KEYS = {
    "key-new": 32, "key:with:colons": 16, "gcm1": 24, "gcm2": 32, "sb1": 32, "cm-gcm": 16,
    "key-old": 24, "legacy-key": 32,
    # never in a config: used to produce unknown-key / undecryptable values
    "key-gone": 32, "wrong-cbc": 32, "wrong-gcm": 24, "wrong-sb": 32,
}
K = {name: key_material(name, size) for name, size in KEYS.items()}
CONFIG_KEYS = [("config-current.yaml", ["key-new", "key:with:colons", "gcm1", "gcm2", "sb1", "cm-gcm"]),
               ("config-old.yaml", ["key-old", "gcm1", "gcm2", "sb1", "cm-gcm"]),
               ("config-legacy.json", ["legacy-key"])]


def aes_provider(kind, names, indent="    "):
    lines = [f"{indent}- {kind}:", f"{indent}    keys:"]
    for n in names:
        lines.append(f'{indent}    - name: "{n}"')
        lines.append(f'{indent}      secret: "{b64(K[n])}"')
    return lines


def write_configs(cfg_dir: str):
    os.makedirs(cfg_dir, exist_ok=True)
    head = ["apiVersion: apiserver.config.k8s.io/v1", "kind: EncryptionConfiguration", "resources:"]

    def config(first_cbc, comment):
        lines = [f"# {comment}",
                 "# Generated by testdata/gen/populate.py; keys = sha256('etcd-audit-fixture-key:'+name)[:size]."]
        lines += head + ["  - resources:", "    - secrets", "    providers:"]
        lines += aes_provider("aescbc", first_cbc)
        lines += aes_provider("aesgcm", ["gcm1", "gcm2"])
        lines += aes_provider("secretbox", ["sb1"])
        lines += ["    - identity: {}", "  - resources:", "    - configmaps", "    providers:"]
        lines += aes_provider("aesgcm", ["cm-gcm"])
        lines += ["    - identity: {}"]
        return "\n".join(lines) + "\n"

    with open(os.path.join(cfg_dir, "config-current.yaml"), "w") as f:
        f.write(config(["key-new", "key:with:colons"], "Current control-plane config: writes secrets with aescbc key-new."))
    with open(os.path.join(cfg_dir, "config-old.yaml"), "w") as f:
        f.write(config(["key-old"], "An old control-plane node before the aescbc rotation (key-old first)."))
    with open(os.path.join(cfg_dir, "config-kms.yaml"), "w") as f:
        f.write("\n".join([
            "# KMS providers only. A test plugin unwraps DEKs/seeds with the fixed KEK documented in",
            "# testdata/gen/k8senc.py (KMS_KEK, key id kek-1).",
            *head,
            "  - resources:", "    - secrets", "    providers:",
            "    - kms:", "        apiVersion: v2", "        name: vault",
            "        endpoint: unix:///tmp/etcd-audit-kms.sock",
            "    - kms:", "        apiVersion: v1", "        name: legacy",
            "        endpoint: unix:///tmp/etcd-audit-kms1.sock", "        cachesize: 100",
            "    - identity: {}",
        ]) + "\n")
    legacy = {"kind": "EncryptionConfig", "apiVersion": "v1", "resources": [{
        "resources": ["secrets"],
        "providers": [{"aescbc": {"keys": [{"name": "legacy-key", "secret": b64(K["legacy-key"])}]}},
                      {"identity": {}}]}]}
    with open(os.path.join(cfg_dir, "config-legacy.json"), "w") as f:
        json.dump(legacy, f, indent=2)
        f.write("\n")


def scenario_scan(etcd: k.Etcd, out_dir: str):
    write_configs(os.path.join(out_dir, "scan"))
    rand = seeded("scan")
    rec = Recorder(etcd)
    P = "/registry"
    plains = {}  # key -> plaintext protobuf (to build copied values)
    markers_b64 = []

    def sk(ns, name):
        return f"{P}/secrets/{ns}/{name}"

    def secret(ns, name, case, n, size=0):
        marker = f"{MARK}{case}-{n}"
        data = {"password": marker.encode()}
        if size:
            data["bundle.pem"] = filler(rand, size)
        pt = k.secret_pb(name, ns, data)
        plains[sk(ns, name)] = pt
        return pt, marker

    def put(key, value, cls, case, marker=None, provider=None, key_name=None, stale=None, encoding=None, **extra):
        return rec.put(key, value, **{"class": cls}, case=case, marker=marker, provider=provider,
                       key_name=key_name, stale=stale, encoding=encoding, **extra)

    # ---- plaintext ----
    for n in (1, 2, 3):
        pt, m = secret("plain", f"s{n}", "plain", n)
        put(sk("plain", f"s{n}"), pt, "plaintext", "plain", m, encoding="protobuf")
    m = f"{MARK}plain-json-1"
    put(sk("plain-json", "s1"), k.secret_json("s1", "plain-json", {"password": m.encode()}), "plaintext",
        "plain-json", m, encoding="json", note="JSON storage: the marker is stored base64-encoded")
    markers_b64.append(b64(m.encode()))
    m = f"{MARK}cm-plain-1"
    put(f"{P}/configmaps/cm/plain-1", k.configmap_pb("plain-1", "cm", {"config": m}), "plaintext", "cm-plain",
        m, encoding="protobuf", note="configmap: in scope because the configs name configmaps")

    # ---- decryptable, not stale ----
    for n in (1, 2, 3, 4):
        pt, m = secret("cbc", f"s{n}", "cbc", n, size=6000 if n == 4 else 0)
        put(sk("cbc", f"s{n}"), k.aescbc("key-new", K["key-new"], pt, rand), "decryptable", "cbc", m,
            "aescbc", "key-new", False, "protobuf", note="value > 4 KB" if n == 4 else None)
    m = f"{MARK}cbc-json-1"
    pt = k.secret_json("json-1", "cbc", {"password": m.encode()})
    put(sk("cbc", "json-1"), k.aescbc("key-new", K["key-new"], pt, rand),
        "decryptable", "cbc", m, "aescbc", "key-new", False, "json", note="encrypted JSON-encoded secret")
    for n in (1, 2):
        key, m = f"{P}/configmaps/cm/gcm-{n}", f"{MARK}cm-gcm-{n}"
        pt = k.configmap_pb(f"gcm-{n}", "cm", {"config": m})
        put(key, k.aesgcm("cm-gcm", K["cm-gcm"], pt, key.encode(), rand), "decryptable", "cm-gcm", m,
            "aesgcm", "cm-gcm", False, "protobuf", note="configmap: first provider of the configmaps list")

    # ---- decryptable, stale ----
    stale_cases = [
        ("stale-colons", lambda pt, key: k.aescbc("key:with:colons", K["key:with:colons"], pt, rand),
         "aescbc", "key:with:colons",
         "second key of the first provider; the name contains ':'"),
        ("stale-gcm1", lambda pt, key: k.aesgcm("gcm1", K["gcm1"], pt, key, rand),
         "aesgcm", "gcm1", "24-byte key, non-first provider"),
        ("stale-gcm2", lambda pt, key: k.aesgcm("gcm2", K["gcm2"], pt, key, rand),
         "aesgcm", "gcm2", "32-byte key, non-first provider"),
        ("stale-sb1", lambda pt, key: k.secretbox("sb1", K["sb1"], pt, rand), "secretbox", "sb1", "non-first provider"),
        ("stale-old", lambda pt, key: k.aescbc("key-old", K["key-old"], pt, rand), "aescbc", "key-old",
         "key only in config-old.yaml: not in the current provider list (the current apiserver cannot read it)"),
    ]
    for case, enc, prov, kn, note in stale_cases:
        for n in (1, 2):
            pt, m = secret(case, f"s{n}", case, n)
            key = sk(case, f"s{n}")
            put(key, enc(pt, key.encode()), "decryptable", case, m, prov, kn, True, "protobuf", note=note)

    # ---- unknown-key ----
    for n in (1, 2):
        pt, m = secret("unknown-gone", f"s{n}", "unknown-gone", n)
        put(sk("unknown-gone", f"s{n}"), k.aescbc("key-gone", K["key-gone"], pt, rand), "unknown-key", "unknown-gone",
            m, "aescbc", "key-gone", note="aescbc key name in no config")
    pt, m = secret("unknown-legacykey", "s1", "unknown-legacykey", 1)
    put(sk("unknown-legacykey", "s1"), k.aescbc("legacy-key", K["legacy-key"], pt, rand), "unknown-key",
        "unknown-legacykey", m, "aescbc", "legacy-key", note="decryptable (not stale) with -c config-legacy.json")
    kms_cases = [
        # case, api, source_type, key_id, annotations, cbc
        ("kms2-seed", "v2", 1, "kek-1", None, False),
        ("kms2-seed", "v2", 1, "kek-1", {"kms.etcd-audit.example.com": b"fixture"}, False),
        ("kms2-dek", "v2", 0, "kek-1", None, False),
        ("kms2-oldkeyid", "v2", 1, "kek-0", None, False),
        ("kms1", "v1", None, None, None, False),
        ("kms1-cbc", "v1", None, None, None, True),
    ]
    counters, kms_secrets = {}, []
    for case, api, st, kid, ann, cbc in kms_cases:
        n = counters[case] = counters.get(case, 0) + 1
        pt, m = secret(case, f"s{n}", case, n)
        key = sk(case, f"s{n}")
        dek = rand(32)
        kms_secrets.append(b64(dek))
        if api == "v2":
            v = k.kms_v2("vault", pt, key.encode(), key_id=kid, source_type=st, rand=rand, annotations=ann, secret=dek)
            info = {"api": "v2", "provider_name": "vault", "key_id": kid, "dek_source_type": st,
                    "annotations": sorted(ann) if ann else []}
        else:
            v = k.kms_v1("legacy", pt, key.encode(), rand=rand, cbc=cbc, dek=dek)
            info = {"api": "v1", "provider_name": "legacy",
                    "data": "aes-cbc (1.24, read via the CBC fallback)" if cbc else "aes-gcm"}
        info["decryptable_with_test_plugin"] = True
        put(key, v, "unknown-key", case, m, "kms", "vault" if api == "v2" else "legacy", kms=info,
            note="no KMS provider in config-current/old; decryptable with config-kms.yaml + a plugin using KMS_KEK")

    # ---- undecryptable ----
    U = "undecrypt"
    # aescbc under key-new's name but encrypted with another key. CBC has no authentication, so
    # whether the apiserver's padding check passes is luck: search the seeded stream for one
    # ciphertext of each kind.
    cbc_pre = k.prefix("aescbc", "key-new")
    for n, (name, want_ok) in enumerate((("cbc-wrongkey-padok", True), ("cbc-wrongkey-padbad", False)), 1):
        pt, m = secret(U, name, U, n)
        tries = 1
        payload = k.cbc_encrypt(K["wrong-cbc"], pt, rand)
        while k.cbc_padding_ok(K["key-new"], payload) != want_ok:  # ~1 in 200 passes by chance
            payload, tries = k.cbc_encrypt(K["wrong-cbc"], pt, rand), tries + 1
        note = (f"wrong key, but decrypting with key-new yields VALID padding (IV try {tries}): garbage that "
                "must fail the object check" if want_ok else "wrong key; decrypting with key-new gives INVALID padding")
        put(sk(U, name), cbc_pre + payload, "undecryptable", f"{U}-{name}", m, "aescbc", "key-new", note=note)
    pt, m = secret(U, "gcm1-wrongkey", U, 3)
    put(sk(U, "gcm1-wrongkey"), k.aesgcm("gcm1", K["wrong-gcm"], pt, sk(U, "gcm1-wrongkey").encode(), rand),
        "undecryptable", f"{U}-gcm1-wrongkey", m, "aesgcm", "gcm1", note="wrong key: GCM authentication fails")
    pt, m = secret(U, "sb1-wrongkey", U, 4)
    put(sk(U, "sb1-wrongkey"), k.secretbox("sb1", K["wrong-sb"], pt, rand), "undecryptable", f"{U}-sb1-wrongkey", m,
        "secretbox",
        "sb1", note="wrong key: Poly1305 fails")
    src = sk("stale-gcm1", "s1")
    put(sk(U, "gcm1-copied"), rec.revs[rec.live[src]]["_value"], "undecryptable", f"{U}-gcm1-copied",
        rec.revs[rec.live[src]]["marker"], "aesgcm", "gcm1", copied_from=src,
        note="exact copy of another key's value: AAD (the etcd key) differs, authentication fails")
    src = sk("cbc", "s1")
    put(sk(U, "cbc-name-mismatch"), rec.revs[rec.live[src]]["_value"], "undecryptable", f"{U}-cbc-name-mismatch",
        rec.revs[rec.live[src]]["marker"], "aescbc", "key-new", copied_from=src,
        note="exact copy: decrypts with key-new, but metadata is cbc/s1, not undecrypt/cbc-name-mismatch")
    put(sk(U, "cbc-random"), k.aescbc("key-new", K["key-new"], rand(200), rand), "undecryptable", f"{U}-cbc-random", None,
        "aescbc", "key-new", note="correct key, plaintext is 200 random bytes (not a Kubernetes object)")

    # ---- malformed ----
    M = "malformed"
    kms_secrets.append(b64(rand(32)))
    empty_obj = k.encrypted_object(b"", "kek-1", k.kms_wrap(base64.b64decode(kms_secrets[-1]), rand), None, 1)
    malformed = [
        ("cbc-not-block-multiple", cbc_pre + rand(16 + 20), "aescbc", "key-new", "IV + 20 bytes: not a multiple of 16"),
        ("cbc-iv-only", cbc_pre + rand(16), "aescbc", "key-new", "exactly 16 bytes (IV only; apiserver would panic)"),
        ("gcm1-short", k.prefix("aesgcm", "gcm1") + rand(8), "aesgcm", "gcm1", "8 bytes: shorter than the nonce"),
        ("sb1-short", k.prefix("secretbox", "sb1") + rand(30), "secretbox", "sb1", "30 bytes: shorter than nonce+tag (40)"),
        ("kms2-truncated", k.prefix("kms", "vault", "v2") + b"\x0a\x64" + b"trunc", "kms", "vault",
         "not an EncryptedObject: field 1 declares 100 bytes, 5 follow"),
        ("kms2-bad-wiretype", k.prefix("kms", "vault", "v2") + b"\x0f\xff\xfe garbage", "kms", "vault",
         "not an EncryptedObject: wire type 7"),
        ("kms2-empty-data", k.prefix("kms", "vault", "v2") + empty_obj, "kms", "vault",
         "valid protobuf, keyID and encryptedDEKSource set, encryptedData empty (ValidateEncryptedObject)"),
        ("kms1-short", k.prefix("kms", "legacy") + b"\x00", "kms", "legacy", "1 byte: cannot read the uint16 length prefix"),
        ("rot13", b"k8s:enc:rot13:v1:k:" + b"frperg", None, None, "unknown provider token rot13"),
    ]
    for name, value, prov, kn, note in malformed:
        put(sk(M, name), value, "malformed", f"{M}-{name}", None, prov, kn, note=note)
    for name, value, *_ in malformed:
        if name.startswith("kms2-") and name != "kms2-empty-data":
            try:
                k.pb_parse(value[len(k.prefix("kms", "vault", "v2")):])
                raise AssertionError(f"{name} parses as protobuf")
            except ValueError:
                pass

    # ---- history ----
    H = "hist"
    pt, m = secret(H, "rotated", "hist", 1)
    put(sk(H, "rotated"), pt, "plaintext", H, m, encoding="protobuf", note="first written in plaintext")
    put(sk(H, "rotated"), k.aescbc("key-new", K["key-new"], pt, rand), "decryptable", H, m, "aescbc", "key-new",
        False, "protobuf", note="rewritten encrypted; the plaintext revision stays in history")
    pt, m = secret(H, "deleted", "hist", 2)
    put(sk(H, "deleted"), pt, "plaintext", H, m, encoding="protobuf", note="plaintext, then deleted")
    rec.delete(sk(H, "deleted"))

    # ---- out of scope by default (not secrets/configmaps, or not objects at all) ----
    oos = []
    for ns in sorted({r["key"].split("/")[3] for r in rec.revs}):
        oos.append(rec.put(f"{P}/namespaces/{ns}", k.namespace_pb(ns))["key"])
    oos.append(rec.put(f"{P}/pods/default/web-0", k.pod_json("web-0", "default"))["key"])
    oos.append(rec.put(f"{P}/ranges/serviceips", k.range_allocation_pb("", "10.96.0.0/12", rand(32)))["key"])
    oos.append(rec.put(f"{P}/masterleases/10.0.0.1", k.endpoints_pb("10.0.0.1", "", "10.0.0.1"))["key"])
    oos.append(rec.put("compact_rev_key", b"1")["key"])
    in_scope = [r for r in rec.revs if r["key"] not in oos]

    live = set(rec.live.values())
    entries = [entry_json(r, P) for i, r in enumerate(rec.revs) if i in live and r["key"] not in oos]
    history = [entry_json(r, P, history=True) for i, r in enumerate(rec.revs) if i not in live and r["key"] not in oos]
    dek_like = [b64(k.KMS_KEK)] + kms_secrets
    key_list = [{"name": n, "bytes": len(K[n]), "b64": b64(K[n]),
                 "in": [c for c, names in CONFIG_KEYS if n in names]}
                for n in KEYS]
    dump(os.path.join(out_dir, "etcd35-scan.expected.json"), {
        "schema": "etcd-audit.fixture/v1",
        "etcd_prefix": P,
        "configs": ["scan/config-current.yaml", "scan/config-old.yaml"],
        "args": ["-c", "scan/config-current.yaml", "-c", "scan/config-old.yaml"],
        "resources_in_scope": ["secrets", "configmaps"],
        "revision": rec.revs[-1]["mod_revision"],
        "compact_revision": None,
        "summary": {"entries": summary(entries), "history": summary(history),
                    "entries_by_resource": count_by(entries, "resource")},
        "notes": [
            "class/provider/key_name/stale/encoding are what the auditor must report for "
            "-c config-current.yaml -c config-old.yaml.",
            "stale is null unless decryptable; encoding is null unless the value was decoded (plaintext or decryptable).",
            "malformed rot13 has provider and key_name null (unknown provider token).",
            "malformed kms2-* are malformed even without a KMS config: the EncryptedObject is structurally invalid.",
            "kms.* entries: unknown-key here; with -c config-kms.yaml and a plugin that unwraps with kms.kek_b64 "
            "they decrypt. kms2-oldkeyid carries keyID kek-0 (stale if the plugin reports kek-1); kms2-dek is the "
            "1.27/1.28 type-0 format (the apiserver also calls that stale: type differs from what it writes); "
            "kms1-cbc is read through the CBC fallback (stale).",
            "entries with copied_from hold a byte-exact copy of that key's value, so their marker repeats the source's.",
            "history = every non-live revision of in-scope keys (tombstones have class null, deleted true).",
            "out_of_scope keys are not secrets/configmaps; entries exclude them.",
        ],
        "kms": {"kek_b64": b64(k.KMS_KEK), "key_id": k.KMS_KEY_ID,
                "wrap": "ciphertext = nonce(12) || AES-256-GCM(KEK, nonce, DEK or seed, no AAD) || tag(16)",
                "v2_endpoint": "unix:///tmp/etcd-audit-kms.sock", "v1_endpoint": "unix:///tmp/etcd-audit-kms1.sock"},
        "keys": key_list,
        "deleted": sorted(r["key"] for r in in_scope if r["deleted"]),
        "out_of_scope": oos,
        "markers": sorted({r["marker"] for r in in_scope if r.get("marker")}),
        "markers_b64": markers_b64,
        "key_materials_b64": [b64(K[n]) for n in KEYS] + dek_like,
        "entries": entries,
        "history": history,
    })
    print(f"scan: revision {rec.revs[-1]['mod_revision']}, {len(entries)} entries {summary(entries)}, "
          f"{len(history)} history")


# =============================================================================================
# openshift: the same kind of values under the /kubernetes.io prefix
# =============================================================================================


def scenario_openshift(etcd: k.Etcd, out_dir: str):
    rand = seeded("openshift")
    rec = Recorder(etcd, "/kubernetes.io")
    P = "/kubernetes.io"
    for ns in ("openshift-config", "app"):
        rec.put(f"{P}/namespaces/{ns}", k.namespace_pb(ns))
    entries = []

    def put(ns, name, how, n):
        key, marker = f"{P}/secrets/{ns}/{name}", f"{MARK}openshift-{n}"
        pt = k.secret_pb(name, ns, {"password": marker.encode()})
        if how == "plain":
            r = rec.put(key, pt, **{"class": "plaintext"}, provider=None, key_name=None, stale=None, encoding="protobuf")
        elif how == "cbc":
            r = rec.put(key, k.aescbc("key-new", K["key-new"], pt, rand), **{"class": "decryptable"}, provider="aescbc",
                        key_name="key-new", stale=False, encoding="protobuf")
        else:  # AAD must be the full key including /kubernetes.io
            r = rec.put(key, k.aesgcm("gcm1", K["gcm1"], pt, key.encode(), rand), **{"class": "decryptable"},
                        provider="aesgcm", key_name="gcm1", stale=True, encoding="protobuf",
                        note="AAD includes the /kubernetes.io prefix")
        r["marker"] = marker
        entries.append(r)

    put("openshift-config", "pull-secret", "plain", 1)
    put("openshift-config", "etcd-client", "plain", 2)
    for i in range(3):
        put("app", f"db-{i}", "cbc", 3 + i)
    put("app", "gcm-0", "gcm", 6)
    # OpenShift API resources live under /openshift.io; the core prefix stays /kubernetes.io.
    oos = [rec.put("/openshift.io/routes/app/web", b'{"kind":"Route","apiVersion":"route.openshift.io/v1",'
                   b'"metadata":{"name":"web","namespace":"app"},"spec":{"host":"web.apps.example.com"}}\n')["key"],
           rec.put("compact_rev_key", b"1")["key"],
           f"{P}/namespaces/openshift-config", f"{P}/namespaces/app"]
    dump(os.path.join(out_dir, "etcd35-openshift.expected.json"), {
        "schema": "etcd-audit.fixture/v1",
        "etcd_prefix": P,
        "configs": ["scan/config-current.yaml", "scan/config-old.yaml"],
        "args": ["-c", "scan/config-current.yaml", "-c", "scan/config-old.yaml"],
        "resources_in_scope": ["secrets", "configmaps"],
        "revision": rec.revs[-1]["mod_revision"],
        "compact_revision": None,
        "summary": {"entries": summary([entry_json(r, P) for r in entries])},
        "out_of_scope": oos,
        "markers": sorted(r["marker"] for r in entries),
        "key_materials_b64": [b64(K["key-new"]), b64(K["gcm1"])],
        "entries": [entry_json(r, P) for r in entries],
        "history": [],
        "deleted": [],
    })
    print(f"openshift: revision {rec.revs[-1]['mod_revision']}, {len(entries)} secrets")


# =============================================================================================
# forensics: the plaintext that enabling encryption leaves behind (history, free pages, WAL)
# =============================================================================================

# Secrets per namespace forensics-<case>; the marker of revision v of secret s<n> is
# ETCDAUDIT-SECRET-forensics-<case>-<n>-v<v> (v1 plaintext, v2 aescbc key-new).
FORENSICS_COUNTS = {"compacted": 30, "history": 30, "deleted": 10}
FORENSICS_NODES = 40  # node leases: the out-of-scope churn, rewritten every round
FORENSICS_DELETED_EARLY = 5  # forensics-deleted s1..s5 are deleted before the compaction point
CURRENT_KEYS = CONFIG_KEYS[0][1]  # every key in scan/config-current.yaml


class ApiserverRecorder(Recorder):
    """A Recorder that writes the way kube-apiserver does: every put and delete is a Txn guarded by
    the key's current mod_revision (row field via = "txn"). via="put" sends a plain Put instead."""

    def put(self, key: str, value: bytes, via="txn", **info) -> dict:
        if via == "put":
            rev = self.etcd.put(key, value)
        else:
            prev = self.live.get(key)
            rev = self.etcd.txn_put(key, value, self.revs[prev]["mod_revision"] if prev is not None else 0)
        return self._record_put(key, value, rev, dict(info, via=via))

    def delete(self, key: str) -> dict:
        r = self._record_delete(key, self.etcd.txn_delete(key, self.revs[self.live[key]]["mod_revision"]))
        r["via"] = "txn"
        return r


def dump_nested(path: str, doc: dict):
    """dump(), except that dict values holding lists or dicts are expanded one key per line too
    (the residue section), so diffs stay readable."""
    def fmt(val, ind):
        pad = " " * ind
        if isinstance(val, dict) and any(isinstance(v, (dict, list)) for v in val.values()):
            items = [f"{pad} {json.dumps(key)}: {fmt(v, ind + 1)}" for key, v in val.items()]
            return "{\n" + ",\n".join(items) + "\n" + pad + "}"
        if isinstance(val, list) and val and isinstance(val[0], dict):
            rows = ",\n".join(f"{pad}  " + json.dumps(v, ensure_ascii=False) for v in val)
            return "[\n" + rows + "\n" + pad + " ]"
        return json.dumps(val, ensure_ascii=False)
    with open(path, "w") as f:
        f.write(fmt(doc, 0) + "\n")


def wait_cluster_version(etcd: k.Etcd, timeout=10.0):
    """The leader proposes the cluster version through raft a moment after startup. Waiting for it
    keeps that entry out of the middle of our writes, so raft indexes repeat from run to run."""
    deadline = time.monotonic() + timeout
    while etcd.version().get("etcdcluster", "not_decided") == "not_decided":
        if time.monotonic() > deadline:
            raise RuntimeError("etcd cluster version still not decided")
        time.sleep(0.05)


def scenario_forensics(etcd: k.Etcd, out_dir: str):
    """Secrets written in plaintext, then rewritten with aescbc key-new ("encryption enabled"),
    deletes, lease churn and a physical compaction in the middle of the rewrite, so that the
    plaintext survives in MVCC history for some keys and only in free pages / the WAL for others.
    Writes etcd35-forensics.expected.json without the residue and wal sections: forensics.py
    finish adds those once the files exist."""
    wait_cluster_version(etcd)
    rand = seeded("forensics")
    rng = random.Random("forensics-rng")
    rec = ApiserverRecorder(etcd)
    P = "/registry"

    def in_scope(key):
        return key.startswith(f"{P}/secrets/")

    for ns in [f"forensics-{c}" for c in FORENSICS_COUNTS] + ["kube-node-lease"]:
        rec.put(f"{P}/namespaces/{ns}", k.namespace_pb(ns))
    nodes = [f"node-{i:02d}" for i in range(1, FORENSICS_NODES + 1)]
    renew = [k.FIXED_EPOCH]

    def lease_round(count=len(nodes)):
        """Node heartbeats: rewrite `count` node leases. Returns the revision of the last one."""
        renew[0] += 10
        for node in nodes[:count]:
            r = rec.put(f"{P}/leases/kube-node-lease/{node}", k.lease_pb(node, "kube-node-lease", node, renew[0]))
        return r["mod_revision"]

    tls = {}

    def secret(case, n, version):
        ns, name = f"forensics-{case}", f"s{n}"
        marker = f"{MARK}forensics-{case}-{n}-v{version}"
        if (case, n) not in tls:  # the password (marker) changes per version, tls.key does not
            tls[(case, n)] = filler(rand, rng.randrange(120, 480))
        pt = k.secret_pb(name, ns, {"password": marker.encode(), "tls.key": tls[(case, n)]})
        return f"{P}/secrets/{ns}/{name}", pt, marker

    def put_plain(case, n, note, via="txn"):
        key, pt, m = secret(case, n, 1)
        return rec.put(key, pt, via=via, **{"class": "plaintext"}, case=f"forensics-{case}", marker=m,
                       provider=None, key_name=None, stale=None, encoding="protobuf", note=note)

    def put_encrypted(case, n, note):
        key, pt, m = secret(case, n, 2)
        return rec.put(key, k.aescbc("key-new", K["key-new"], pt, rand), **{"class": "decryptable"},
                       case=f"forensics-{case}", marker=m, provider="aescbc", key_name="key-new", stale=False,
                       encoding="protobuf", note=note)

    # 1. Before encryption at rest: every secret is written in plaintext (protobuf).
    lease_round()
    for n in range(1, FORENSICS_COUNTS["compacted"] + 1):  # odd n: plain Put, even n: Txn
        put_plain("compacted", n, "plaintext v1; compacted away", via="put" if n % 2 else "txn")
    lease_round()
    for n in range(1, FORENSICS_COUNTS["history"] + 1):
        put_plain("history", n, "plaintext v1; the base revision kept by the compaction")
    lease_round()
    for n in range(1, FORENSICS_COUNTS["deleted"] + 1):
        early = n <= FORENSICS_DELETED_EARLY
        put_plain("deleted", n, "plaintext, deleted before the compaction point: compacted away" if early
                  else "plaintext, deleted after the compaction point: stays in history")
    lease_round()
    for n in range(1, FORENSICS_DELETED_EARLY + 1):
        rec.delete(f"{P}/secrets/forensics-deleted/s{n}")
    for _ in range(3):
        lease_round()
    # 2. Encryption enabled: every secret is rewritten (kubectl replace), namespace by namespace.
    for n in range(1, FORENSICS_COUNTS["compacted"] + 1):
        put_encrypted("compacted", n, "rewritten with aescbc key-new before the compaction point")
    # The compaction point: a lease heartbeat between the two namespaces of the rewrite.
    compact_rev = lease_round()
    for n in range(1, FORENSICS_COUNTS["history"] + 1):
        put_encrypted("history", n, "rewritten with aescbc key-new after the compaction point")
    for n in range(FORENSICS_DELETED_EARLY + 1, FORENSICS_COUNTS["deleted"] + 1):
        rec.delete(f"{P}/secrets/forensics-deleted/s{n}")
    lease_round()
    # 3. The apiserver's compactor: compact_rev_key, then a physical compaction at compact_rev.
    rec.put("compact_rev_key", str(compact_rev).encode(), via="put", note="not an object")
    etcd.compact(compact_rev)
    # 4. The cluster keeps running: a few heartbeats after the compaction reuse some freed pages.
    lease_round(10)

    removed = compacted(rec, compact_rev)
    live = set(rec.live.values())
    touched = sorted({r["key"] for r in rec.revs if in_scope(r["key"])})
    deleted_keys = sorted(key for key in touched if key not in rec.live)
    oos = sorted({r["key"] for r in rec.revs if not in_scope(r["key"])})

    def hist_row(r):
        out = entry_json(r, P, history=True)
        out["deleted"] = r["key"] in deleted_keys  # key-level, as the auditor reports it
        out["tombstone"] = r["deleted"]  # this row is the delete itself
        return out

    entries = [entry_json(r, P) for i, r in enumerate(rec.revs) if i in live and in_scope(r["key"])]
    history = [hist_row(r) for i, r in enumerate(rec.revs)
               if i not in live and in_scope(r["key"]) and r["mod_revision"] not in removed]
    removed_rows = [{"key": r["key"], "mod_revision": r["mod_revision"], "create_revision": r["create_revision"],
                     "version": r["version"], "deleted": r["key"] in deleted_keys, "tombstone": r["deleted"],
                     "class": r.get("class"), "marker": r.get("marker")}
                    for r in rec.revs if in_scope(r["key"]) and r["mod_revision"] in removed]
    oos_rows = sum(1 for r in rec.revs if not in_scope(r["key"]) and r["mod_revision"] not in removed)
    secret_revs = [r for r in rec.revs if in_scope(r["key"])]
    plain_markers = sorted(r["marker"] for r in secret_revs if r.get("class") == "plaintext")
    assert len(set(r["marker"] for r in secret_revs if r.get("marker"))) == len(
        [r for r in secret_revs if r.get("marker")]), "markers must be unique per revision"
    writes = {}
    for r in secret_revs:
        op = "delete" if r["deleted"] else "put"
        writes[f"{op}_{r['via']}"] = writes.get(f"{op}_{r['via']}", 0) + 1
    name = "etcd35-forensics"
    dump_nested(os.path.join(out_dir, f"{name}.expected.json"), {
        "schema": "etcd-audit.fixture/v1",
        "etcd_prefix": P,
        "configs": ["scan/config-current.yaml"],
        "args": ["-c", "scan/config-current.yaml"],
        "resources_in_scope": ["secrets", "configmaps"],
        "revision": rec.revs[-1]["mod_revision"],
        "compact_revision": compact_rev,
        "files": {
            f"{name}.snapshot.db": "etcdctl snapshot save after the last write (db + SHA-256 trailer)",
            f"{name}.member.db": "member/snap/db after a clean stop (raw, no trailer)",
            f"{name}-datadir/": "member/snap/db (same bytes as the member.db) + member/wal/*.wal cut after the "
                                "last record: a data dir etcd 3.5 restarts from",
            f"{name}-defrag.snapshot.db": "etcd restarted on the original data dir, etcdctl defrag, then "
                                          "etcdctl snapshot save: no free pages with old data",
        },
        "summary": {"entries": summary(entries), "history": summary(history),
                    "removed_by_compaction": summary(removed_rows), "deleted_keys": len(deleted_keys),
                    "secret_writes": writes, "out_of_scope_rows": oos_rows},
        "notes": [
            "Expected verdicts are for -c scan/config-current.yaml (aescbc key-new is its first key).",
            "Sequence: plaintext v1 of every secret; deletes of forensics-deleted/s1..s5; lease churn; the "
            "forensics-compacted rewrite to aescbc key-new (v2); compaction point C (a lease heartbeat); the "
            "forensics-history rewrite (v2); deletes of forensics-deleted/s6..s10; compact_rev_key; physical "
            "compaction at C; 10 more heartbeats.",
            "history = every non-live revision of a secret still in the key bucket. deleted is key-level (true for "
            "every revision of a key whose newest revision is a tombstone, as the auditor reports it); tombstone "
            "is row-level (this row is the delete). class is null for tombstones.",
            "removed_by_compaction = secret revisions the compaction deleted from the key bucket: forensics-compacted "
            "v1 and every revision of forensics-deleted/s1..s5. Their plaintext survives in the WAL, and in free "
            "pages only where listed under residue.",
            "residue (per file) = pages in [2, file_len / page_size) not reachable from the active meta's tree "
            "(snapshots without their 32-byte trailer): markers = known markers found in their raw bytes, runs of "
            "adjacent unreachable pages read as one byte range; revisions = in-scope rows decodable from leaf "
            "elements of those pages (revision key + mvccpb.KeyValue that parses) that are not in the key bucket, "
            "deduplicated by revision key, with every page they were found in.",
            "wal = every put to an in-scope key in the data dir's WAL, in log order; applied_revision is the "
            "revision etcd gave it (from the generator, not in the WAL). wal_deletes likewise for deletes.",
            "Leases (/registry/leases/...) are the churn: out of scope for secrets/configmaps configs.",
            "etcd runs with its defaults (map freelist, 100 ms batch commits), so which freed pages get reused "
            "depends on timing: residue and wal_files change from run to run, everything else is reproducible. "
            "Read the residue expectations from this file, never hard-code them.",
        ],
        "keys": [{"name": n, "bytes": len(K[n]), "b64": b64(K[n]), "in": ["config-current.yaml"]}
                 for n in CURRENT_KEYS],
        "deleted": deleted_keys,
        "out_of_scope": oos,
        "out_of_scope_rows": oos_rows,
        "markers": sorted(r["marker"] for r in secret_revs if r.get("marker")),
        "markers_plaintext": plain_markers,
        "key_materials_b64": [b64(K[n]) for n in CURRENT_KEYS],
        "entries": entries,
        "history": history,
        "removed_by_compaction": removed_rows,
    })
    print(f"forensics: revision {rec.revs[-1]['mod_revision']}, compacted at {compact_rev}, {len(entries)} entries "
          f"{summary(entries)}, {len(history)} history {summary(history)}, {len(removed_rows)} removed, "
          f"{oos_rows} out-of-scope rows")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("scenario", choices=["basic", "scan", "openshift", "forensics", "configs"])
    ap.add_argument("--port", type=int)
    ap.add_argument("--tag", default="etcd35", help="basic: file name prefix and marker tag")
    ap.add_argument("--out", required=True, help="testdata directory")
    a = ap.parse_args()
    k.selftest()  # never write fixtures with a broken encoder
    if a.scenario == "configs":
        return write_configs(os.path.join(a.out, "scan"))
    etcd = k.Etcd(a.port)
    if a.scenario == "basic":
        scenario_basic(etcd, a.tag, a.out)
    elif a.scenario == "scan":
        scenario_scan(etcd, a.out)
    elif a.scenario == "forensics":
        scenario_forensics(etcd, a.out)
    else:
        scenario_openshift(etcd, a.out)


if __name__ == "__main__":
    main()
