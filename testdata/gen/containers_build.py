#!/usr/bin/env python3
"""Build the container fixtures in testdata/containers/ (driven by make-containers.sh).

    containers_build.py write-delta   --port P --state F   # Kubernetes-shaped writes for the delta
    containers_build.py write-datadir --port P --state F   # plaintext secrets for the data-dir tarball
    containers_build.py pack --src SNAP --rev REV --out DIR --work W --lzw BIN --k3szip BIN \\
        --watch WATCH.jsonl --delta-state F --datadir DATA --datadir-state F [--bomb-mib N]
    containers_build.py check-datadir --port P --state F  # a restarted etcd serves what we wrote

Only the standard library, plus k8senc (and through it `cryptography`). Everything is derived
from fixed seeds, fixed times and fixed key material, so every file except the data-dir tarball
(etcd IDs inside db/WAL) is byte-identical from run to run for the same source snapshot.
"""

import argparse
import base64
import datetime
import gzip
import hashlib
import io
import json
import os
import random
import subprocess
import sys
import tarfile
import zipfile
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import k8senc as k  # noqa: E402

MARK = "ETCDAUDIT-SECRET-"
P = "/registry"

# k3s / Gardener names. The unix times are fixed; the revision comes from the source snapshot.
K3S_NAME = "etcd-snapshot-node-1-1795800000"
K3S_TIME = 1795800000
FULL_TIMES = {"gz": 1795800000, "zlib": 1795800001, "Z": 1795800002, "none": 1795800003}
INCR_TIME = 1795800100
TAMPERED_TIME = 1795800101
EVENT_TIME0 = 1795800040  # the delta's event times: fixed, before INCR_TIME
TAR_MTIME = 1795800200
K3S_METADATA = {"cluster": "etcd-audit-fixture", "environment": "test", "owner": "platform-team"}


def key_material(name: str, size: int) -> bytes:
    # Same derivation as populate.py key_material (testdata/README.md "Configs and key names").
    return hashlib.sha256(b"etcd-audit-fixture-key:" + name.encode()).digest()[:size]


KEY_NEW = key_material("key-new", 32)  # first aescbc key of scan/config-current.yaml


def b64(b: bytes) -> str:
    return base64.b64encode(b).decode()


def sha256_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def dump(path: str, doc):
    with open(path, "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")


# ---------------------------------------------------------------------------------------------
# etcd writes (Txn like kube-apiserver: If(ModRevision == x).Then(Put/Delete))
# ---------------------------------------------------------------------------------------------

class Writer:
    """Writes through etcd's JSON gateway and records every revision it made."""

    def __init__(self, port: int):
        self.etcd = k.Etcd(port)
        self.revs = []  # every write, in order
        self.live = {}  # key -> index in revs of the live revision

    def _txn(self, key: str, mod_revision: int, op: dict) -> int:
        kb = b64(key.encode())
        body = {"compare": [{"key": kb, "target": "MOD", "result": "EQUAL", "mod_revision": str(mod_revision)}],
                "success": [op]}
        if mod_revision:
            body["failure"] = [{"request_range": {"key": kb}}]
        r = self.etcd.call("kv/txn", body)
        assert r.get("succeeded"), f"txn on {key}: compare failed: {r}"
        return int(r["header"]["revision"])

    def put(self, key: str, value: bytes, **info) -> dict:
        prev = self.live.get(key)
        mod = self.revs[prev]["mod_revision"] if prev is not None else 0
        rev = self._txn(key, mod, {"request_put": {"key": b64(key.encode()), "value": b64(value)}})
        if prev is None:
            create, version = rev, 1
        else:
            create, version = self.revs[prev]["create_revision"], self.revs[prev]["version"] + 1
        r = {"type": "PUT", "key": key, "mod_revision": rev, "create_revision": create, "version": version, **info,
             "value_b64": b64(value)}
        self.live[key] = len(self.revs)
        self.revs.append(r)
        return r

    def delete(self, key: str) -> dict:
        rev = self._txn(key, self.revs[self.live[key]]["mod_revision"], {"request_delete_range": {"key": b64(key.encode())}})
        del self.live[key]
        r = {"type": "DELETE", "key": key, "mod_revision": rev, "create_revision": 0, "version": 0, "class": None,
             "marker": None}
        self.revs.append(r)
        return r


def split_key(key: str):
    parts = key[len(P) + 1:].split("/")
    return parts[0], (parts[1] if len(parts) == 3 else None), parts[-1]


def secret_value(ns, name, marker, how, rand):
    """(value, info) for a Secret holding `marker`; how = plaintext | aescbc."""
    pt = k.secret_pb(name, ns, {"password": marker.encode()})
    if how == "plaintext":
        return pt, {"class": "plaintext", "provider": None, "key_name": None, "stale": None, "encoding": "protobuf",
                    "marker": marker}
    return k.aescbc("key-new", KEY_NEW, pt, rand), {"class": "decryptable", "provider": "aescbc",
                                                      "key_name": "key-new", "stale": False, "encoding": "protobuf",
                                                      "marker": marker}


def cmd_write_delta(a):
    """The delta scenario. The "full snapshot" it continues is the empty store at revision 1,
    so the delta starts at revision 2 and holds every write."""
    rand = random.Random("containers-delta").randbytes
    w = Writer(a.port)
    start = int(w.etcd.call("kv/range", {"key": b64(b"\0"), "count_only": True})["header"]["revision"]) + 1
    ns = "delta"

    def secret(name, n, how):
        value, info = secret_value(ns, name, f"{MARK}delta-{name}-v{n}", how, rand)
        return w.put(f"{P}/secrets/{ns}/{name}", value, **info, note=f"{name} v{n} ({how})")

    w.put(f"{P}/namespaces/{ns}", k.namespace_pb(ns), **{"class": None, "marker": None, "in_scope": False,
                                                         "note": "namespace: out of scope"})
    secret("plain-1", 1, "plaintext")
    secret("plain-2", 1, "plaintext")
    secret("cbc-1", 1, "aescbc")
    secret("cbc-2", 1, "aescbc")
    secret("rotated", 1, "plaintext")
    secret("gone", 1, "plaintext")
    secret("recreated", 1, "plaintext")
    secret("plain-2", 2, "plaintext")
    secret("cbc-2", 2, "aescbc")
    secret("rotated", 2, "aescbc")  # encrypted on rewrite: the plaintext v1 stays in history
    w.delete(f"{P}/secrets/{ns}/gone")
    w.delete(f"{P}/secrets/{ns}/recreated")
    secret("recreated", 2, "plaintext")  # a new generation: create_revision = its own revision
    m = f"{MARK}delta-cm-1-v1"
    w.put(f"{P}/configmaps/{ns}/cm-1", k.configmap_pb("cm-1", ns, {"config": m}),
          **{"class": "plaintext", "provider": None, "key_name": None, "stale": None, "encoding": "protobuf",
             "marker": m, "note": "configmap: in scope because the configs name configmaps"})
    dump(a.state, {"start": start, "last": w.revs[-1]["mod_revision"], "revs": w.revs})
    print(f"delta: revisions {start}..{w.revs[-1]['mod_revision']}, {len(w.revs)} events")


def cmd_write_datadir(a):
    w = Writer(a.port)
    ns = "datadir"
    w.put(f"{P}/namespaces/{ns}", k.namespace_pb(ns), **{"class": None, "marker": None, "in_scope": False})

    def secret(name, n):
        value, info = secret_value(ns, name, f"{MARK}datadir-{name}-v{n}", "plaintext", None)
        return w.put(f"{P}/secrets/{ns}/{name}", value, **info)

    for name in ("s1", "s2", "s3"):
        secret(name, 1)
    secret("s2", 2)
    w.delete(f"{P}/secrets/{ns}/s3")
    dump(a.state, {"revision": w.revs[-1]["mod_revision"], "revs": w.revs})
    print(f"datadir: {len(w.revs)} writes, revision {w.revs[-1]['mod_revision']}")


def cmd_check_datadir(a):
    """Run against etcd restarted on the unpacked tarball: every live key is served with the
    value we wrote, deleted keys are gone."""
    st = json.load(open(a.state))
    e = k.Etcd(a.port)
    got = {kv["key"].decode(): kv for kv in e.get(f"{P}/", prefix=True)}
    live = {}
    for r in st["revs"]:
        if r["type"] == "PUT":
            live[r["key"]] = r
        else:
            live.pop(r["key"], None)
    assert set(got) == set(live), (sorted(got), sorted(live))
    for key, r in live.items():
        assert got[key]["mod_revision"] == r["mod_revision"] and b64(got[key]["value"]) == r["value_b64"], key
    assert e.revision() >= st["revision"]
    print(f"restarted etcd on the unpacked data dir serves {len(got)} keys as written")


# ---------------------------------------------------------------------------------------------
# Packing
# ---------------------------------------------------------------------------------------------

def gzip_bytes(data: bytes, level=6) -> bytes:
    """Like Go's gzip.Writer with a zero Header (Gardener): no name, MTIME 0, OS 255."""
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, compresslevel=level, mtime=0) as g:
        g.write(data)
    return buf.getvalue()


def go_time(unix: int, nanos: int) -> str:
    """Go time.Time MarshalJSON (RFC3339Nano, UTC): trailing zeros of the fraction dropped."""
    s = datetime.datetime.fromtimestamp(unix, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    if nanos:
        s += "." + f"{nanos:09d}".rstrip("0")
    return s + "Z"


def tarinfo(name, size=0, mode=0o600, kind=tarfile.REGTYPE):
    ti = tarfile.TarInfo(name)
    ti.size, ti.mode, ti.type, ti.mtime = size, mode, kind, TAR_MTIME
    ti.uid = ti.gid = 0
    ti.uname = ti.gname = "root"
    return ti


def write_tar(fileobj, members):
    """members: [(name, bytes | None for a directory, mode)] in order. GNU format like `tar c`."""
    with tarfile.open(fileobj=fileobj, mode="w", format=tarfile.GNU_FORMAT) as t:
        for name, data, mode in members:
            if data is None:
                t.addfile(tarinfo(name, 0, mode, tarfile.DIRTYPE))
            else:
                t.addfile(tarinfo(name, len(data), mode), io.BytesIO(data))


def tar_gz(path, members):
    with open(path, "wb") as f, gzip.GzipFile(filename="", mode="wb", fileobj=f, mtime=0) as g:
        write_tar(g, members)


def wal_end(buf: bytes) -> int:
    """Offset just after the last complete WAL frame (etcd-bbolt.md §7)."""
    off = 0
    while off + 8 <= len(buf):
        lf = int.from_bytes(buf[off:off + 8], "little")
        if lf == 0:
            break
        n = lf & ((1 << 56) - 1)
        pad = (lf >> 56) & 7 if lf >> 63 else 0
        if off + 8 + n + pad > len(buf):
            break
        off += 8 + n + pad
    return off


def zip_info(name, date_time=(2026, 11, 27, 17, 20, 0)):
    zi = zipfile.ZipInfo(name, date_time=date_time)
    zi.compress_type = zipfile.ZIP_DEFLATED
    zi.create_system = 3  # Unix
    zi.external_attr = 0o100600 << 16
    return zi


def bomb_zip(path, size):
    zi = zip_info("etcd-snapshot-bomb")
    zi.file_size = size  # known up front, so zipfile decides zip64 itself
    # level 9 for this entry (the attribute was renamed in Python 3.13)
    setattr(zi, "compress_level" if "compress_level" in zipfile.ZipInfo.__slots__ else "_compresslevel", 9)
    chunk = bytes(1 << 20)
    with zipfile.ZipFile(path, "w") as zf, zf.open(zi, "w") as w:
        for _ in range(size >> 20):
            w.write(chunk)


def bomb_gz(path, size):
    chunk = bytes(1 << 20)
    with open(path, "wb") as f, gzip.GzipFile(filename="", mode="wb", fileobj=f, compresslevel=9, mtime=0) as g:
        for _ in range(size >> 20):
            g.write(chunk)


def delta_events(watch_path, state):
    """The mvccpb.Event JSON objects from `etcdctl watch -w json` (one WatchResponse per line),
    checked against what we wrote."""
    events = []
    dec = json.JSONDecoder()
    text = open(watch_path).read()
    pos = 0
    while True:
        while pos < len(text) and text[pos].isspace():
            pos += 1
        if pos >= len(text):
            break
        resp, pos = dec.raw_decode(text, pos)
        events.extend(resp.get("Events") or [])
    revs = state["revs"]
    assert len(events) == len(revs), f"watch gave {len(events)} events, we wrote {len(revs)}"
    for ev, r in zip(events, revs):
        kv = ev["kv"]
        assert base64.b64decode(kv["key"]).decode() == r["key"], (ev, r)
        assert kv["mod_revision"] == r["mod_revision"], (ev, r)
        if r["type"] == "PUT":
            assert "type" not in ev and kv["value"] == r["value_b64"], (ev, r)
            assert kv["create_revision"] == r["create_revision"] and kv["version"] == r["version"], (ev, r)
        else:
            assert ev["type"] == 1 and set(kv) == {"key", "mod_revision"}, ev
    return events


def delta_json(events) -> bytes:
    """Go encoding/json of []*event{EtcdEvent *clientv3.Event `json:"etcdEvent"`; Time time.Time
    `json:"time"`}: compact, struct field order (etcdctl printed the events in that order)."""
    wrapped = [{"etcdEvent": ev, "time": go_time(EVENT_TIME0 + 2 * i, (i * 123456789 + 1000) % 10**9)}
               for i, ev in enumerate(events)]
    return json.dumps(wrapped, separators=(",", ":")).encode()


def row(r, history=False):
    """A compact expected row in the shape of etcd35-scan.expected.json."""
    resource, ns, name = split_key(r["key"])
    out = {"key": r["key"], "resource": resource, "namespace": ns, "name": name, "type": r["type"],
           "mod_revision": r["mod_revision"], "create_revision": r["create_revision"], "version": r["version"],
           "class": r.get("class"), "provider": r.get("provider"), "key_name": r.get("key_name"),
           "stale": r.get("stale"), "encoding": r.get("encoding"), "marker": r.get("marker")}
    if r["type"] == "DELETE":
        out["deleted"] = True
    if "note" in r and not history:
        out["note"] = r["note"]
    return out


def split_entries(revs):
    """entries = the last PUT of every key that is not deleted at the end; history = the rest."""
    last = {}
    for i, r in enumerate(revs):
        last[r["key"]] = i
    live = {i for key, i in last.items() if revs[i]["type"] == "PUT"}
    entries = [revs[i] for i in sorted(live)]
    history = [r for i, r in enumerate(revs) if i not in live]
    return entries, history


def in_scope(r):
    return r.get("in_scope", True)


def cmd_pack(a):
    out, work = a.out, a.work
    src = open(a.src, "rb").read()
    rev = a.rev
    src_sha = hashlib.sha256(src).hexdigest()
    files = {}

    def put(rel, data: bytes):
        path = os.path.join(out, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)
        return path

    def snapshot_file(rel, chain, how, **extra):
        files[rel] = {"container": chain, "inner_sha256": src_sha, "trailer": "valid",
                      "same_verdicts_as": "etcd35-scan.expected.json", "how": how, **extra}

    # ---- k3s --------------------------------------------------------------------------------
    snap = os.path.join(work, K3S_NAME)  # k3s names the snapshot file like this, mode 0600
    with open(snap, "wb") as f:
        f.write(src)
    os.chmod(snap, 0o600)
    zip_rel = f"k3s/{K3S_NAME}.zip"
    os.makedirs(os.path.join(out, "k3s"), exist_ok=True)
    subprocess.run([a.k3szip, "-in", snap, "-name", K3S_NAME, "-time", str(K3S_TIME), "-out",
                    os.path.join(out, zip_rel)], check=True)
    k3s_zip = open(os.path.join(out, zip_rel), "rb").read()
    snapshot_file(zip_rel, ["zip", "etcd-snapshot"],
                  "k3s --etcd-snapshot-compress: Go archive/zip, one Deflate entry named after the snapshot "
                  "(no extension), data descriptor (streamed), mode 0600, Modified 1795800000",
                  zip_entry=K3S_NAME, k3s_metadata=f"k3s/.metadata/{K3S_NAME}.zip", k3s_metadata_json=K3S_METADATA)
    put("k3s/backup-1", k3s_zip)
    snapshot_file("k3s/backup-1", ["zip", "etcd-snapshot"], "the k3s zip renamed, no extension: content decides",
                  zip_entry=K3S_NAME, same_bytes_as=zip_rel)
    # k3s saveSnapshotMetadata: json.Marshal(configmap.Data) (sorted keys, compact, no newline)
    put(f"k3s/.metadata/{K3S_NAME}.zip", json.dumps(K3S_METADATA, separators=(",", ":"), sort_keys=True).encode())
    files[f"k3s/.metadata/{K3S_NAME}.zip"] = {
        "container": None, "sidecar_of": zip_rel, "backup": False,
        "how": "k3s extra-metadata sidecar (JSON object string->string); not a backup: "
               "attached to the zip's backups[].object.sidecar, never listed as skipped"}

    # ---- Gardener full snapshots -------------------------------------------------------------
    full = f"Full-00000000-{rev:08d}"
    gz_full = gzip_bytes(src)
    lzw_full = subprocess.run([a.lzw], input=src, stdout=subprocess.PIPE, check=True).stdout
    for suffix, data, chain, how in (
            (".gz", gz_full, ["gzip", "etcd-snapshot"], "gzip (Go gzip.Writer defaults: no name, mtime 0)"),
            (".zlib", zlib.compress(src, 6), ["zlib", "etcd-snapshot"], "zlib (78 9c)"),
            (".Z", lzw_full, ["lzw", "etcd-snapshot"],
             "Go compress/lzw LSB litWidth 8 (no magic: recognised by the .Z suffix only)"),
            ("", src, ["etcd-snapshot"], "no compression (no suffix)")):
        t = FULL_TIMES[suffix[1:] or "none"]
        rel = f"gardener/v2/{full}-{t}{suffix}"
        put(rel, data)
        snapshot_file(rel, chain, how, gardener={"kind": "Full", "start_revision": 0, "last_revision": rev,
                                                 "created_unix": t, "compression": suffix[1:] or None})

    # ---- zstd, nested tar.gz -----------------------------------------------------------------
    zst = subprocess.run(["zstd", "-q", "-19", "--single-thread", "-c"], input=src, stdout=subprocess.PIPE,
                         check=True).stdout
    put("zstd/etcd35-scan.snapshot.db.zst", zst)
    snapshot_file("zstd/etcd35-scan.snapshot.db.zst", ["zstd", "etcd-snapshot"], "zstd -19 (CLI, content checksum)")
    os.makedirs(os.path.join(out, "nested"), exist_ok=True)
    tar_gz(os.path.join(out, "nested/etcd35-scan.tar.gz"),
           [("backups/", None, 0o755), ("backups/etcd35-scan.snapshot.db", src, 0o644)])
    snapshot_file("nested/etcd35-scan.tar.gz", ["gzip", "tar", "etcd-snapshot"],
                  "tar czf (GNU format) of backups/ holding the snapshot", tar_entries=[
                      "backups/", "backups/etcd35-scan.snapshot.db"], inner_path="backups/etcd35-scan.snapshot.db")

    # ---- Gardener delta ----------------------------------------------------------------------
    st = json.load(open(a.delta_state))
    events = delta_events(a.watch, st)
    js = delta_json(events)
    digest = hashlib.sha256(js).digest()
    incr = f"Incr-{st['start']:08d}-{st['last']:08d}"
    incr_rel = f"gardener/v2/{incr}-{INCR_TIME}.gz"
    put(incr_rel, gzip_bytes(js + digest))
    bad = digest[:-1] + bytes([digest[-1] ^ 0xFF])
    tampered_rel = f"gardener/v2/{incr}-{TAMPERED_TIME}-tampered.gz"
    put(tampered_rel, gzip_bytes(js + bad))
    revs = st["revs"]
    scoped = [r for r in revs if in_scope(r)]
    entries, history = split_entries(scoped)
    delta = {
        "json_sha256": digest.hex(), "json_bytes": len(js), "start_revision": st["start"],
        "last_revision": st["last"], "event_count": len(events),
        "events": [{"key": r["key"], "type": r["type"], "mod_revision": r["mod_revision"],
                    "create_revision": r["create_revision"], "version": r["version"], "class": r.get("class"),
                    "provider": r.get("provider"), "key_name": r.get("key_name"), "marker": r.get("marker"),
                    "in_scope": in_scope(r)} for r in revs],
        "out_of_scope": sorted({r["key"] for r in revs if not in_scope(r)}),
        "entries": [row(r) for r in entries],
        "history": [row(r, True) for r in history],
        "deleted": sorted({r["key"] for r in scoped if r["type"] == "DELETE"} - {r["key"] for r in entries}),
        "markers": sorted({r["marker"] for r in scoped if r.get("marker")}),
        "summary": {
            "entries": count(entries), "history": count(history, tombstones=True)},
    }
    files[incr_rel] = {"container": ["gzip", "gardener-delta"], "delta_hash": "valid", "delta": "see delta",
                       "how": "JSON array of {etcdEvent, time} from real etcd watch events + raw SHA-256 of the "
                              "JSON, gzip", "gardener": {"kind": "Incr", "start_revision": st["start"],
                                                         "last_revision": st["last"], "created_unix": INCR_TIME,
                                                         "compression": "gz"}}
    files[tampered_rel] = {"container": ["gzip", "gardener-delta"], "delta_hash": "mismatch",
                           "stored_sha256": bad.hex(), "actual_sha256": digest.hex(),
                           "how": "the same JSON bytes as the good delta; the last byte of the stored SHA-256 "
                                  "is XORed with 0xff. Gardener's restorer refuses it (hash mismatch)."}

    # ---- hostile -----------------------------------------------------------------------------
    bomb = a.bomb_mib << 20
    os.makedirs(os.path.join(out, "hostile"), exist_ok=True)
    bomb_zip(os.path.join(out, "hostile/bomb.zip"), bomb)
    bomb_gz(os.path.join(out, "hostile/bomb.gz"), bomb)
    test_cap = 64 << 20
    for rel, layer, how in (("hostile/bomb.zip", "zip", "one Deflate entry 'etcd-snapshot-bomb' of zeros (level 9)"),
                            ("hostile/bomb.gz", "gzip", "one gzip member of zeros (level 9)")):
        files[rel] = {"container": [layer], "refused": True, "error": "too-large", "layer": layer,
                      "inflated_bytes": bomb, "how": how,
                      "test_args": ["--max-unpacked-bytes", str(test_cap)],
                      "expected_message": f"{layer}: unpacked data exceeds --max-unpacked-bytes ({test_cap} bytes)",
                      "with_default_limit": "below the 10 GiB default: unpacks fully to zeros, then "
                                            "'not a recognized backup'. Always pass a small limit in tests."}
    buf = io.BytesIO()
    write_tar(buf, [("../evil.db", src, 0o644), ("/abs.db", src, 0o644)])
    put("hostile/traversal.tar", buf.getvalue())
    files["hostile/traversal.tar"] = {
        "container": ["tar"], "refused": True, "error": "unsafe-entry", "layer": "tar",
        "unsafe_entries": ["../evil.db", "/abs.db"],
        "how": "GNU tar, two entries holding the scan snapshot bytes; names stored verbatim",
        "expected_message": 'tar: refusing entry "../evil.db"'}
    zbuf = io.BytesIO()
    with zipfile.ZipFile(zbuf, "w") as zf:
        zf.writestr(zip_info("../../evil.db"), src)
    put("hostile/traversal.zip", zbuf.getvalue())
    files["hostile/traversal.zip"] = {
        "container": ["zip"], "refused": True, "error": "unsafe-entry", "layer": "zip",
        "unsafe_entries": ["../../evil.db"],
        "how": "one Deflate entry named ../../evil.db holding the scan snapshot (a single-entry zip, like k3s's)",
        "expected_message": 'zip: refusing entry "../../evil.db"'}
    put("hostile/not-a-backup.txt", b"This is not an etcd backup. It is plain text and must be reported as "
                                    b"unrecognised (skipped inside a folder), never parsed.\n")
    files["hostile/not-a-backup.txt"] = {
        "container": None, "refused": True, "error": "unrecognized",
        "expected_message": "not a recognized backup", "in_folder": "skipped"}

    # ---- data-dir tarball --------------------------------------------------------------------
    ds = json.load(open(a.datadir_state))
    db = open(os.path.join(a.datadir, "member/snap/db"), "rb").read()
    wal_dir = os.path.join(a.datadir, "member/wal")
    wals = []
    for name in sorted(os.listdir(wal_dir)):
        if name.endswith(".wal"):  # 0.tmp / 1.tmp are 64 MB preallocated spares: left out
            raw = open(os.path.join(wal_dir, name), "rb").read()
            wals.append((name, raw[:wal_end(raw)]))
    members = [("etcd/", None, 0o700), ("etcd/member/", None, 0o700), ("etcd/member/snap/", None, 0o700),
               ("etcd/member/snap/db", db, 0o600), ("etcd/member/wal/", None, 0o700)]
    members += [(f"etcd/member/wal/{n}", b, 0o600) for n, b in wals]
    os.makedirs(os.path.join(out, "datadir"), exist_ok=True)
    tar_gz(os.path.join(out, "datadir/etcd-data.tar.gz"), members)
    drevs = ds["revs"]
    dscoped = [r for r in drevs if in_scope(r)]
    dentries, dhistory = split_entries(dscoped)
    files["datadir/etcd-data.tar.gz"] = {
        "container": ["gzip", "tar", "bbolt"], "trailer": "absent", "data_dir": "etcd",
        "db": "etcd/member/snap/db", "wal": [f"etcd/member/wal/{n}" for n, _ in wals],
        "tar_entries": [m[0] for m in members],
        "how": "tar czf of a stopped etcd 3.5.1 data dir (as a copy of /var/lib/etcd): raw member/snap/db "
               "(no trailer) + WAL segments cut after their last record (names kept); db and WAL bytes differ "
               "per run (cluster/member IDs), the logical content does not",
        "revision": ds["revision"], "compact_revision": None,
        "live_secret_keys": [r["key"] for r in dentries if r["key"].startswith(f"{P}/secrets/")],
        "deleted": sorted({r["key"] for r in dscoped if r["type"] == "DELETE"} - {r["key"] for r in dentries}),
        "entries": [row(r) for r in dentries], "history": [row(r, True) for r in dhistory],
        "out_of_scope": sorted({r["key"] for r in drevs if not in_scope(r)}),
        "markers": sorted({r["marker"] for r in dscoped if r.get("marker")}),
        "markers_in_db_key_bucket": sorted({r["marker"] for r in dscoped if r.get("marker")}),
        "markers_in_wal": sorted({r["marker"] for r in dscoped if r.get("marker")}),
        "summary": {"entries": count(dentries), "history": count(dhistory, tombstones=True)},
        "notes": ["No compaction ran, so every revision (history included) is in the key bucket.",
                  "Every write is also a WAL entry (Txn put/delete like kube-apiserver), so every marker is in "
                  "the WAL, including the deleted and overwritten ones."]}

    # ---- mixed folder ------------------------------------------------------------------------
    put(f"mixed/{K3S_NAME}.zip", k3s_zip)
    put(f"mixed/{full}-{FULL_TIMES['gz']}.gz", gz_full)
    put("mixed/sub/etcd35-scan.snapshot.db.zst", zst)
    put("mixed/notes.md", b"# Backup notes\n\nNightly etcd backups land here. Not a backup itself: the scan "
                          b"must list this file as skipped and go on.\n")
    snapshot_file(f"mixed/{K3S_NAME}.zip", ["zip", "etcd-snapshot"], "copy of the k3s zip",
                  zip_entry=K3S_NAME, same_bytes_as=zip_rel)
    snapshot_file(f"mixed/{full}-{FULL_TIMES['gz']}.gz", ["gzip", "etcd-snapshot"], "copy of the Gardener full .gz",
                  same_bytes_as=f"gardener/v2/{full}-{FULL_TIMES['gz']}.gz")
    snapshot_file("mixed/sub/etcd35-scan.snapshot.db.zst", ["zstd", "etcd-snapshot"], "copy of the zstd file",
                  same_bytes_as="zstd/etcd35-scan.snapshot.db.zst")
    files["mixed/notes.md"] = {"container": None, "backup": False, "in_folder": "skipped"}

    def folder(rel_dir):
        """What scanning testdata/containers/<rel_dir> as one folder source gives: sorted paths."""
        inside = sorted(r for r in files if r.startswith(rel_dir + "/"))
        return {"backups": [r for r in inside if files[r].get("container") and not files[r].get("refused")],
                # k3s `.metadata/` sidecars are attached to their snapshots, never listed.
                "skipped": [r for r in inside if files[r].get("container") is None and "/.metadata/" not in r],
                "refused": [r for r in inside if files[r].get("refused") and files[r].get("container")]}

    doc = {
        "schema": 1,
        "about": "Expected results for testdata/containers/ (paths below are relative to it). Regenerate with "
                 "testdata/gen/make-containers.sh. Chains are outermost first.",
        "source": {"path": "etcd35-scan.snapshot.db", "sha256": src_sha, "size": len(src), "revision": rev,
                   "note": "every snapshot container holds exactly these bytes; if testdata/etcd35-scan.snapshot.db "
                           "no longer has this sha256, rerun make-containers.sh"},
        "args": ["-c", "scan/config-current.yaml", "-c", "scan/config-old.yaml"],
        "args_note": "relative to testdata/: the same configs as the scan scenario; the snapshot containers must "
                     "give exactly the verdicts of etcd35-scan.expected.json",
        "key_materials_b64": [b64(KEY_NEW)],
        "files": {r: files[r] for r in sorted(files)},
        "folders": {"mixed": folder("mixed"), "k3s": folder("k3s"), "gardener/v2": folder("gardener/v2"),
                    "hostile": folder("hostile")},
        "delta": delta,
    }
    dump(os.path.join(out, "expected.json"), doc)


def count(rows, tombstones=False):
    c = {}
    for r in rows:
        cls = "tombstone" if r["type"] == "DELETE" else r.get("class")
        c[cls] = c.get(cls, 0) + 1
    return dict(sorted(c.items()))


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    for name in ("write-delta", "write-datadir", "check-datadir"):
        s = sub.add_parser(name)
        s.add_argument("--port", type=int, required=True)
        s.add_argument("--state", required=True)
    s = sub.add_parser("pack")
    for opt in ("src", "out", "work", "lzw", "k3szip", "watch", "delta-state", "datadir", "datadir-state"):
        s.add_argument("--" + opt, required=True)
    s.add_argument("--rev", type=int, required=True)
    s.add_argument("--bomb-mib", type=int, default=128)
    a = ap.parse_args()
    {"write-delta": cmd_write_delta, "write-datadir": cmd_write_datadir, "check-datadir": cmd_check_datadir,
     "pack": cmd_pack}[a.cmd](a)


if __name__ == "__main__":
    main()
