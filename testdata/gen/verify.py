#!/usr/bin/env python3
"""Check the generated fixtures against their *.expected.json, reading the bbolt files with
boltread.py (not with etcd), and check every scan verdict label by actually decrypting.

    verify.py TESTDATA_DIR

Fails loudly (AssertionError) on the first mismatch.
"""

import base64
import hashlib
import json
import os
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import k8senc as k  # noqa: E402
from boltread import Bolt, kv_decode  # noqa: E402
from populate import K  # noqa: E402  (fixed key material by name)

# key names in config-current.yaml + config-old.yaml (the run the expected verdicts describe)
CONFIGURED = {"key-new", "key:with:colons", "gcm1", "gcm2", "sb1", "cm-gcm", "key-old"}
MAX_FILE = 1_000_000
MAX_TOTAL = 5_000_000  # the files directly in testdata/ (the forensics files added ~0.75 MB)
MAX_DATADIR = 3_000_000  # etcd35-forensics-datadir/


def key_bucket(b: Bolt) -> dict:
    """{mod_revision: row} from the key bucket."""
    rows = {}
    for rk, v in b.buckets[b"key"]:
        assert len(rk) in (17, 18) and rk[8:9] == b"_", rk
        main = struct.unpack(">Q", rk[:8])[0]
        kv = kv_decode(v)
        rows[main] = {"key": kv["key"].decode(), "deleted": len(rk) == 18 and rk[17:] == b"t",
                      "create_revision": kv["create_revision"], "version": kv["version"], "value": kv["value"]}
        if not rows[main]["deleted"]:
            assert kv["mod_revision"] == main, (main, kv["mod_revision"])
    return rows


def check_rows(rows: dict, expected: list, where: str):
    for e in expected:
        r = rows.get(e["mod_revision"])
        assert r is not None, f"{where}: revision {e['mod_revision']} ({e['key']}) missing from key bucket"
        # forensics rows: deleted is key-level, tombstone is the row's own flag
        assert r["key"] == e["key"] and r["deleted"] == e.get("tombstone", e.get("deleted", False)), (where, e, r["key"])
        if not r["deleted"]:
            assert (r["create_revision"], r["version"]) == (e["create_revision"], e["version"]), (where, e, r)


def check_trailer(path: str, buf: bytes, b: Bolt):
    if path.endswith(".snapshot.db"):
        assert len(buf) % 512 == 32, f"{path}: no SHA-256 trailer"
        assert hashlib.sha256(buf[:-32]).digest() == buf[-32:], f"{path}: trailer mismatch"
        assert len(buf) - 32 == b.meta["pgid"] * b.page_size
    else:
        assert len(buf) % 512 == 0


def parse_object(pt: bytes):
    """(encoding, namespace, name) of a stored Kubernetes object, or None."""
    if pt.startswith(k.PROTO_MAGIC):
        try:
            unknown = {f: v for f, _, v in k.pb_parse(pt[4:])}
            raw = {f: v for f, _, v in k.pb_parse(unknown[2])}
            meta = {f: v for f, _, v in k.pb_parse(raw[1])}
            return "protobuf", meta.get(3, b"").decode() or None, meta[1].decode()
        except (ValueError, KeyError):
            return None
    if pt.startswith(b"{"):
        try:
            m = json.loads(pt)["metadata"]
            return "json", m.get("namespace"), m["name"]
        except (ValueError, KeyError):
            return None
    return None


def try_decrypt(provider: str, name: str, value: bytes, etcd_key: bytes):
    """Decrypt with the fixture key called `name`; None when it fails as the apiserver would."""
    pre = k.prefix(provider, name)
    assert value.startswith(pre), (value[:40], pre)
    p, key = value[len(pre):], K[name]
    try:
        if provider == "aescbc":
            if len(p) < 32 or len(p) % 16 or not k.cbc_padding_ok(key, p):
                return None
            r = k.cbc_decrypt_raw(key, p)
            return r[:-r[-1]]
        if provider == "aesgcm":
            return k.gcm_open(key, p, etcd_key)
        if provider == "secretbox":
            return k.secretbox_open(key, p)
    except Exception:
        return None
    raise AssertionError(provider)


def kms_decrypt(e, value: bytes, etcd_key: bytes):
    api = e["kms"]["api"]
    p = value[len(k.prefix("kms", e["key_name"], api)):]
    if api == "v1":
        n = struct.unpack(">H", p[:2])[0]
        dek, data = k.kms_unwrap(p[2:2 + n]), p[2 + n:]
        try:
            return k.gcm_open(dek, data, etcd_key)
        except Exception:
            r = k.cbc_decrypt_raw(dek, data)
            return r[:-r[-1]]
    obj = {f: v for f, _, v in k.pb_parse(p)}
    secret, data = k.kms_unwrap(obj[3]), obj[1]
    assert obj[2].decode() == e["kms"]["key_id"] and obj.get(5, 0) == e["kms"]["dek_source_type"]
    if obj.get(5, 0) == 1:
        return k.gcm_open(k.xnonce_key(secret, data[:32]), data[32:], etcd_key)
    return k.gcm_open(secret, data, etcd_key)


def check_verdicts(rows: dict, doc: dict):
    configured = CONFIGURED
    for e in doc["entries"] + [h for h in doc["history"] if not h.get("tombstone", h["deleted"])]:
        value, ek = rows[e["mod_revision"]]["value"], e["key"].encode()
        cls, where = e["class"], f"{e['key']}@{e['mod_revision']}"
        if cls == "plaintext":
            obj = parse_object(value)
            assert obj == (e["encoding"], e["namespace"], e["name"]), (where, obj)
            marker = e["marker"].encode()
            assert marker in value or base64.b64encode(marker) in value, where
        elif cls == "decryptable":
            pt = try_decrypt(e["provider"], e["key_name"], value, ek)
            assert pt is not None and parse_object(pt) == (e["encoding"], e["namespace"], e["name"]), where
            assert e["marker"].encode() in pt or base64.b64encode(e["marker"].encode()) in pt, where
            assert isinstance(e["stale"], bool), where
        elif cls == "undecryptable":
            assert e["key_name"] in configured, where
            pt = try_decrypt(e["provider"], e["key_name"], value, ek)
            assert pt is None or parse_object(pt) != ("protobuf", e["namespace"], e["name"]), where
            if "padok" in e["key"]:
                assert k.cbc_padding_ok(K["key-new"], value[len(k.prefix("aescbc", "key-new")):]), where
            if "padbad" in e["key"]:
                assert not k.cbc_padding_ok(K["key-new"], value[len(k.prefix("aescbc", "key-new")):]), where
        elif cls == "unknown-key":
            assert e["key_name"] not in configured, where
            if e["provider"] == "kms":
                pt = kms_decrypt(e, value, ek)
            else:
                pt = try_decrypt(e["provider"], e["key_name"], value, ek)
            assert parse_object(pt) == ("protobuf", e["namespace"], e["name"]), where
        elif cls == "malformed":
            assert value.startswith(b"k8s:enc:"), where
        else:
            raise AssertionError(f"{where}: class {cls}")
        if cls not in ("decryptable",):
            assert e["stale"] is None, where
        if cls not in ("plaintext", "decryptable"):
            assert e["encoding"] is None, where


def check_configs(cfg_dir: str):
    """The configs parse as YAML/JSON, and every key decodes to the fixture key of that name."""
    import yaml  # PyYAML: only needed here
    names = {}
    for f in ("config-current.yaml", "config-old.yaml", "config-kms.yaml", "config-legacy.json"):
        doc = yaml.safe_load(open(os.path.join(cfg_dir, f)))
        assert doc["kind"] in ("EncryptionConfiguration", "EncryptionConfig"), f
        for res in doc["resources"]:
            for prov in res["providers"]:
                (kind, body), = prov.items()
                for key in (body or {}).get("keys", []):
                    assert base64.b64decode(key["secret"], validate=True) == K[key["name"]], (f, key["name"])
                    names.setdefault(f, []).append(key["name"])
    assert names["config-current.yaml"] == ["key-new", "key:with:colons", "gcm1", "gcm2", "sb1", "cm-gcm"], names
    assert names["config-old.yaml"] == ["key-old", "gcm1", "gcm2", "sb1", "cm-gcm"], names
    assert set(names["config-current.yaml"]) | set(names["config-old.yaml"]) == CONFIGURED
    assert "config-kms.yaml" not in names and names["config-legacy.json"] == ["legacy-key"]


def tree_size(top: str) -> int:
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(top) for f in files)


def markers_in(data: bytes, markers: list) -> set:
    return {m for m in markers if m.encode() in data}


def page_bytes(b: Bolt, pages) -> bytes:
    """Bytes of runs of adjacent pages, with a NUL gap between runs so no marker spans two runs."""
    ps = b.page_size
    return b"\0".join(b.buf[p * ps:(p + n) * ps] for p, n in b.runs(sorted(pages)))


def check_forensics(td: str, doc: dict):
    """The forensics fixture: residue and WAL sections match the files, and the invariants an
    attacker-model test relies on hold, checked here without the generator's own code paths
    where possible (whole-file marker scans)."""
    import forensics as fx  # noqa: E402
    history_plain = {h["marker"] for h in doc["history"] if h["class"] == "plaintext"}
    removed_plain = {r["marker"] for r in doc["removed_by_compaction"] if r["class"] == "plaintext"}
    plain, enc = set(doc["markers_plaintext"]), set(doc["markers"]) - set(doc["markers_plaintext"])
    assert plain == history_plain | removed_plain | {w["marker"] for w in doc["wal"] if w["class"] == "plaintext"}
    assert all(m.endswith("-v2") for m in enc) and all(m.endswith("-v1") for m in plain)
    assert not plain & {e["marker"] for e in doc["entries"]}, "every live secret is encrypted"
    markers = [m.encode() for m in doc["markers"]]
    known = {r["mod_revision"]: {"key": r["key"], "marker": r.get("marker"), "removed": False}
             for r in doc["entries"] + doc["history"]}
    known.update({r["mod_revision"]: {"key": r["key"], "marker": r.get("marker"), "removed": True}
                  for r in doc["removed_by_compaction"]})
    for name in fx.FILES:
        path = os.path.join(td, name)
        b = Bolt(path)
        got = fx.residue(path, markers, known)
        assert got == doc["residue"][name], f"{name}: residue differs from expected.json"
        free = set(b.unreachable())
        live = [p for p in range(len(b.buf) // b.page_size) if p not in free]
        # the tree holds exactly the history plaintext; every other plaintext marker is residue
        assert markers_in(page_bytes(b, live), doc["markers"]) == history_plain, name
        assert markers_in(b.buf, doc["markers"]) == history_plain | set(got["markers"]), name
        assert not markers_in(b.buf, sorted(enc)), f"{name}: an encrypted revision's marker in clear"
        assert set(got["markers"]) <= plain and not got["partial_marker_hits"], name
        assert all(r["removed_by_compaction"] for r in got["revisions"]), name
        assert {r["marker"] for r in got["revisions"] if r["marker"]} <= set(got["markers"]), name
        if "defrag" in name:
            assert not got["markers"] and not got["revisions"], f"{name}: defrag left old data in free pages"
        else:
            survived = {r["marker"] for r in got["revisions"] if r["class"] == "plaintext"}
            assert survived & removed_plain, f"{name}: no compacted plaintext survived in free pages"
    # The data dir: the same db bytes as the member.db, WAL segments cut after their last record.
    dd = os.path.join(td, fx.DATADIR)
    assert tree_size(dd) < MAX_DATADIR, tree_size(dd)
    with open(os.path.join(dd, "member", "snap", "db"), "rb") as f1, \
            open(os.path.join(td, f"{fx.NAME}.member.db"), "rb") as f2:
        assert f1.read() == f2.read(), "datadir db != member.db"
    wal = b"".join(open(p, "rb").read() for p in fx.wal_paths(dd))
    for f in doc["wal_files"]:
        size = os.path.getsize(os.path.join(dd, "member", "wal", f["file"]))
        assert size == f["bytes"] and size % 8 == 0, f
    files, puts, deletes, _ = fx.wal_section(dd, doc, markers)  # raises on a broken CRC chain
    assert (files, puts, deletes) == (doc["wal_files"], doc["wal"], doc["wal_deletes"]), "wal differs"
    assert markers_in(wal, doc["markers"]) == plain, "the WAL holds every plaintext ever written, nothing else"
    assert {w["applied_revision"] for w in doc["wal"]} == {rev for rev, r in known.items() if r["marker"]}
    assert any(w["via"] == "txn" for w in doc["wal"]) and any(w["via"] == "put" for w in doc["wal"])
    s = doc["summary"]
    print(f"ok forensics: {s['entries']} entries, history {s['history']}, removed {s['removed_by_compaction']}, "
          f"residue {[(v['markers'], v['revisions']) for v in s['residue'].values()]}, wal {len(doc['wal'])} puts")


def main(td: str):
    check_configs(os.path.join(td, "scan"))
    total = 0
    for name in sorted(os.listdir(td)):
        path = os.path.join(td, name)
        if os.path.isfile(path):
            size = os.path.getsize(path)
            total += size
            if name.endswith(".db"):
                assert size < MAX_FILE, f"{name}: {size} bytes"
    assert total < MAX_TOTAL, f"testdata total {total} bytes"

    for name in sorted(os.listdir(td)):
        if not name.endswith(".db"):
            continue
        path = os.path.join(td, name)
        buf = open(path, "rb").read()
        b = Bolt(path)
        st = b.stats()
        status = json.load(open(path + ".status.json"))
        exp_name = name.replace(".snapshot.db", "").replace(".member.db", "").replace(".db", "") + ".expected.json"
        exp_name = exp_name.replace("-defrag.", ".")  # the defragmented copy has the same content
        doc = json.load(open(os.path.join(td, exp_name)))
        rows = key_bucket(b)
        check_trailer(path, buf, b)
        assert status["revision"] == doc["revision"] == max(rows), (name, status["revision"], doc["revision"])
        assert status["totalSize"] == b.meta["pgid"] * b.page_size
        assert status["totalKey"] == sum(len(v) for v in b.buckets.values())
        assert set(x.decode() for x in b.buckets) >= {"key", "meta", "lease", "alarm", "cluster", "members",
                                                     "members_removed", "auth", "authUsers", "authRoles"}, name
        if name.startswith("bolt-"):
            check_rows(rows, doc["key_bucket"], name)
            assert len(rows) == doc["key_bucket_rows"]
            assert st["page_size"] == doc["page_size"]
            assert (st["freelist"] != "not synced") == doc["freelist_synced"]
        else:
            expected = doc["entries"] + doc["history"]
            check_rows(rows, expected, name)
            # every out-of-scope key was written exactly once (forensics: counted in out_of_scope_rows)
            assert len(rows) == len(expected) + doc.get("out_of_scope_rows", len(doc.get("out_of_scope", []))), name
        for r in doc.get("removed_by_compaction", []):
            assert r["mod_revision"] not in rows, (name, r)
        if doc.get("compact_revision"):
            meta = dict(b.buckets[b"meta"])
            assert struct.unpack(">Q", meta[b"finishedCompactRev"][:8])[0] == doc["compact_revision"], name
        if "basic" in name or name.startswith("bolt-"):
            assert st["overflow_pages"] > 0 and st["free_pages"] > 0 and st["key_bucket_depth"] >= 2, (name, st)
        if "scan" in name:  # cbc/s4 (~6 KB) needs an overflow page
            assert st["overflow_pages"] > 0, (name, st)
        if "basic" in name:  # ~140 leaves: the 4 KiB key bucket needs a second branch level
            assert st["key_bucket_depth"] == 3, (name, st)
        if "forensics" in name:  # lease churn and a compaction: a branch level and free pages
            assert st["key_bucket_depth"] >= 2 and st["free_pages"] > 0, (name, st)
        if "scan" in name or "openshift" in name or "forensics" in name:
            check_verdicts(rows, doc)
        print(f"ok {name:30s} {len(buf):8d} B  {st}")
    check_forensics(td, json.load(open(os.path.join(td, "etcd35-forensics.expected.json"))))
    print(f"ok total {total} bytes")


if __name__ == "__main__":
    main(sys.argv[1])
