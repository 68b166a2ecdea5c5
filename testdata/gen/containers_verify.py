#!/usr/bin/env python3
"""Check testdata/containers/ against its expected.json with standard tools and the stdlib only
(never with etcd-audit):

    containers_verify.py --out testdata/containers --src testdata/etcd35-scan.snapshot.db \\
        --lzw BIN --etcdutl BIN --work TMPDIR

- every snapshot container unpacks (Python stdlib, the zstd CLI, the Go LZW decoder) to bytes
  identical to the source, and `etcdutl snapshot status` on the unpacked file equals the source's;
  unzip -t / gzip -t / zstd -t / tar tzf agree;
- the delta: SHA-256 over the JSON, events == expected, each value holds its marker (aescbc
  values decrypted with key-new), entries/history recomputed from the events;
- hostile files: bombs inflate (streamed) to what expected.json says, traversal names are stored
  verbatim, the text file has no magic;
- the data-dir tarball: layout, raw db (no trailer) accepted by etcdutl, WAL frames end exactly
  at the end of each file with a valid CRC-32C chain, markers present in db and WAL;
- sizes.
"""

import argparse
import base64
import gzip
import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
import zipfile
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import k8senc as k  # noqa: E402

MAX_FILE = 300_000
MAX_TOTAL = 1_500_000


def sh(cmd, data=None):
    return subprocess.run(cmd, input=data, stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=True).stdout


def unpack(path, chain, lzw):
    """Peel the chain with standard tools; returns the innermost bytes."""
    data = open(path, "rb").read()
    for layer in chain[:-1]:
        if layer == "zip":
            with zipfile.ZipFile(io.BytesIO(data)) as zf:
                infos = zf.infolist()
                assert len(infos) == 1 and infos[0].compress_type == zipfile.ZIP_DEFLATED, infos
                data = zf.read(infos[0])
        elif layer == "gzip":
            data = gzip.decompress(data)
        elif layer == "zlib":
            data = zlib.decompress(data)
        elif layer == "zstd":
            data = sh(["zstd", "-q", "-d", "-c"], data)
        elif layer == "lzw":
            data = sh([lzw, "-d"], data)
        elif layer == "tar":
            with tarfile.open(fileobj=io.BytesIO(data)) as t:
                regs = [m for m in t.getmembers() if m.isreg()]
                assert len(regs) == 1, regs
                data = t.extractfile(regs[0]).read()
        else:
            raise AssertionError(layer)
    return data


def status(etcdutl, path):
    return json.loads(sh([etcdutl, "snapshot", "status", "-w", "json", path]))


def crc32c_table():
    t = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        t.append(c)
    return t


CRC_T = crc32c_table()


def crc32c(crc, data):
    crc ^= 0xFFFFFFFF
    for b in data:
        crc = CRC_T[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def check_wal(buf: bytes) -> int:
    """Every frame decodes, frames end exactly at len(buf), the CRC chain holds. Returns records."""
    assert crc32c(0, b"somedata") == 0x741F6A05  # etcd-bbolt.md §7 fixture check
    off, running, n = 0, 0, 0
    while off < len(buf):
        lf = int.from_bytes(buf[off:off + 8], "little")
        assert lf != 0, f"zero frame at {off}: WAL not cut after its last record"
        size = lf & ((1 << 56) - 1)
        pad = (lf >> 56) & 7 if lf >> 63 else 0
        rec = buf[off + 8:off + 8 + size]
        assert len(rec) == size and off + 8 + size + pad <= len(buf), f"torn frame at {off}"
        fields = {f: v for f, _, v in k.pb_parse(rec)}
        typ, crc, data = fields.get(1, 0), fields.get(2, 0), fields.get(3, b"")
        if typ == 4:  # Crc record: reseed
            running = crc
        else:
            running = crc32c(running, data)
            assert crc == running, f"CRC mismatch in record {n} (type {typ})"
        off += 8 + size + pad
        n += 1
    assert off == len(buf)
    return n


def gif_lzw_decode(data: bytes) -> bytes:
    """An independent (non-Go) decoder for Go compress/lzw LSB litWidth 8, i.e. GIF-style LZW:
    clear 256, EOF 257, 9..12-bit codes LSB first, width grows when the table reaches 2^width,
    no new entries once it holds 4096 (the encoder sends a clear)."""
    clear, eof = 256, 257
    table = [bytes([i]) for i in range(256)] + [b"", b""]
    width, prev, out = 9, None, bytearray()
    bits = nbits = pos = 0
    while True:
        while nbits < width:
            assert pos < len(data), "LZW stream ends without an EOF code"
            bits |= data[pos] << nbits
            nbits, pos = nbits + 8, pos + 1
        code = bits & ((1 << width) - 1)
        bits, nbits = bits >> width, nbits - width
        if code == clear:
            del table[258:]
            width, prev = 9, None
            continue
        if code == eof:
            break
        if code < len(table) and code != eof:
            entry = table[code]
        elif code == len(table) and prev is not None:
            entry = prev + prev[:1]
        else:
            raise AssertionError(f"invalid LZW code {code}")
        out += entry
        if prev is not None and len(table) < 4096:
            table.append(prev + entry[:1])
        prev = entry
        if len(table) >= (1 << width) and width < 12:
            width += 1
    assert pos == len(data), "bytes after the LZW EOF code"
    return bytes(out)


def value_check(ev_value: bytes, r):
    """A PUT's value holds its marker: plaintext directly, aescbc after decryption with key-new."""
    _, ns, name = r["key"].split("/")[2:5] if r["key"].count("/") == 4 else (None, None, None)
    if r["class"] == "plaintext":
        assert r["marker"].encode() in ev_value, r
    elif r["class"] == "decryptable":
        prefix = b"k8s:enc:aescbc:v1:key-new:"
        assert ev_value.startswith(prefix) and r["marker"].encode() not in ev_value, r
        key = hashlib.sha256(b"etcd-audit-fixture-key:key-new").digest()
        raw = k.cbc_decrypt_raw(key, ev_value[len(prefix):])
        pt = raw[:-raw[-1]]
        assert pt.startswith(b"k8s\x00") and r["marker"].encode() in pt and name.encode() in pt, r
    else:
        assert r["class"] is None and not r["in_scope"], r


def main():
    ap = argparse.ArgumentParser()
    for opt in ("out", "src", "lzw", "etcdutl", "work"):
        ap.add_argument("--" + opt, required=True)
    a = ap.parse_args()
    out = a.out
    doc = json.load(open(os.path.join(out, "expected.json")))
    src = open(a.src, "rb").read()
    assert hashlib.sha256(src).hexdigest() == doc["source"]["sha256"]
    src_status = status(a.etcdutl, a.src)
    assert src_status["revision"] == doc["source"]["revision"]
    files = doc["files"]

    # every file on disk is described, and every description has a file
    on_disk = set()
    for root, _, names in os.walk(out):
        for n in names:
            rel = os.path.relpath(os.path.join(root, n), out)
            if rel not in ("expected.json", "README.md"):
                on_disk.add(rel)
    assert on_disk == set(files), (sorted(on_disk ^ set(files)))

    # ---- snapshot containers -----------------------------------------------------------------
    n_snap = 0
    for rel, f in files.items():
        chain = f.get("container")
        if not chain or chain[-1] != "etcd-snapshot" or f.get("refused"):
            continue
        path = os.path.join(out, rel)
        inner = unpack(path, chain, a.lzw)
        assert inner == src, f"{rel}: inner bytes differ from the source"
        tmp = os.path.join(a.work, "inner.db")
        open(tmp, "wb").write(inner)
        assert status(a.etcdutl, tmp) == src_status, rel
        if "same_bytes_as" in f:
            assert open(path, "rb").read() == open(os.path.join(out, f["same_bytes_as"]), "rb").read(), rel
        # independent CLI tools agree
        if chain[0] == "zip":
            sh(["unzip", "-tq", path])
            with zipfile.ZipFile(path) as zf:
                (zi,) = zf.infolist()
                assert zi.filename == f["zip_entry"] and zi.flag_bits & 0x08, (rel, zi)
        elif chain[0] == "gzip":
            sh(["gzip", "-t", path])
            if chain[1] == "tar":
                names = sh(["tar", "tzf", path]).decode().split()
                assert names == f["tar_entries"], names
        elif chain[0] == "zstd":
            sh(["zstd", "-q", "-t", path])
        elif chain[0] == "lzw":
            z = open(path, "rb").read()
            assert not z.startswith(b"\x1f\x9d")  # not Unix compress(1)
            assert gif_lzw_decode(z) == src, "independent GIF-style LZW decoder disagrees"
        n_snap += 1
        print(f"ok  {rel:58s} {'/'.join(chain):28s} {os.path.getsize(path):>8} B -> {len(inner)} B, status ok")

    meta = json.load(open(os.path.join(out, f"k3s/.metadata/etcd-snapshot-node-1-1795800000.zip")))
    assert isinstance(meta, dict) and all(isinstance(x, str) for kv in meta.items() for x in kv)

    # ---- delta -------------------------------------------------------------------------------
    d = doc["delta"]
    good = gzip.decompress(open(os.path.join(out, [r for r in files if files[r].get("delta_hash") == "valid"][0]),
                                "rb").read())
    js, digest = good[:-32], good[-32:]
    assert hashlib.sha256(js).digest() == digest and digest.hex() == d["json_sha256"] and len(js) == d["json_bytes"]
    assert js.startswith(b'[{"etcdEvent":')
    wrapped = json.loads(js)
    assert len(wrapped) == d["event_count"] == len(d["events"])
    live = {}
    for i, (w, r) in enumerate(zip(wrapped, d["events"])):
        assert list(w) == ["etcdEvent", "time"] and w["time"].endswith("Z")
        ev = w["etcdEvent"]
        kv = ev["kv"]
        assert base64.b64decode(kv["key"]).decode() == r["key"] and kv["mod_revision"] == r["mod_revision"]
        assert ("type" in ev) == (r["type"] == "DELETE") and ev.get("type", 0) in (0, 1)
        assert "prev_kv" not in ev
        if r["type"] == "PUT":
            assert list(kv) == ["key", "create_revision", "mod_revision", "version", "value"], kv
            value_check(base64.b64decode(kv["value"]), r)
            if r["in_scope"]:
                live[r["key"]] = i
        else:
            assert list(kv) == ["key", "mod_revision"], kv
            live.pop(r["key"], None)
    assert [e["key"] for e in d["entries"]] == [d["events"][i]["key"] for i in sorted(live.values())]
    assert [e["mod_revision"] for e in d["entries"]] == [d["events"][i]["mod_revision"] for i in sorted(live.values())]
    hist = [e for i, e in enumerate(d["events"]) if e["in_scope"] and i not in live.values()]
    assert [(h["key"], h["mod_revision"]) for h in d["history"]] == [(h["key"], h["mod_revision"]) for h in hist]
    assert d["start_revision"] == d["events"][0]["mod_revision"] and d["last_revision"] == d["events"][-1]["mod_revision"]
    tampered = [r for r in files if files[r].get("delta_hash") == "mismatch"][0]
    bad = gzip.decompress(open(os.path.join(out, tampered), "rb").read())
    assert bad[:-32] == js and bad[-32:] != digest and bad[-32:].hex() == files[tampered]["stored_sha256"]
    print(f"ok  delta: {len(wrapped)} events, sha256 valid; tampered copy: same JSON, sha256 mismatch")

    # ---- hostile -----------------------------------------------------------------------------
    for rel in ("hostile/bomb.zip", "hostile/bomb.gz"):
        path = os.path.join(out, rel)
        if rel.endswith(".zip"):
            zf = zipfile.ZipFile(path)
            (zi,) = zf.infolist()
            assert zi.file_size == files[rel]["inflated_bytes"]
            stream = zf.open(zi)
        else:
            stream = gzip.open(path)
        total = 0
        while True:
            chunk = stream.read(1 << 22)
            if not chunk:
                break
            assert not chunk.strip(b"\0")
            total += len(chunk)
        assert total == files[rel]["inflated_bytes"], (rel, total)
        print(f"ok  {rel:58s} {os.path.getsize(path):>8} B inflates to {total} B of zeros")
    raw = open(os.path.join(out, "hostile/traversal.tar"), "rb").read()
    names, off = [], 0
    while raw[off:off + 512].strip(b"\0"):
        hdr = raw[off:off + 512]
        names.append(hdr[:100].rstrip(b"\0").decode())
        size = int(hdr[124:136].rstrip(b"\0 ") or b"0", 8)
        assert raw[off + 512:off + 512 + size] == src
        off += 512 + (size + 511) // 512 * 512
    assert names == files["hostile/traversal.tar"]["unsafe_entries"], names
    with zipfile.ZipFile(os.path.join(out, "hostile/traversal.zip")) as zf:
        assert zf.namelist() == files["hostile/traversal.zip"]["unsafe_entries"]
        assert zf.read(zf.namelist()[0]) == src
    txt = open(os.path.join(out, "hostile/not-a-backup.txt"), "rb").read()
    assert txt[:2] not in (b"\x1f\x8b", b"PK") and txt[16:20] != b"\xed\xda\x0c\xed" and txt.isascii()
    print("ok  hostile/traversal.tar, traversal.zip (names stored verbatim), not-a-backup.txt")

    # ---- data dir ----------------------------------------------------------------------------
    dd = files["datadir/etcd-data.tar.gz"]
    path = os.path.join(out, "datadir/etcd-data.tar.gz")
    sh(["gzip", "-t", path])
    assert sh(["tar", "tzf", path]).decode().split() == dd["tar_entries"]
    with tarfile.open(path) as t:
        db = t.extractfile(dd["db"]).read()
        wals = [t.extractfile(w).read() for w in dd["wal"]]
        assert all(m.uid == 0 and m.uname == "root" for m in t.getmembers())
    assert len(db) % 4096 == 0 and db[16:20] == b"\xed\xda\x0c\xed"  # raw bbolt, no trailer
    tmp = os.path.join(a.work, "datadir.db")
    open(tmp, "wb").write(db)
    st = status(a.etcdutl, tmp)
    assert st["revision"] == dd["revision"], st
    for m in dd["markers_in_db_key_bucket"]:
        assert m.encode() in db, m
    records = sum(check_wal(w) for w in wals)
    for m in dd["markers_in_wal"]:
        assert any(m.encode() in w for w in wals), m
    print(f"ok  datadir/etcd-data.tar.gz: db {len(db)} B (status revision {st['revision']}), "
          f"{len(wals)} WAL file(s) {sum(map(len, wals))} B, {records} records, CRC chain valid, markers found")

    # ---- folders -----------------------------------------------------------------------------
    for folder, exp in doc["folders"].items():
        listed = sorted(exp["backups"] + exp["skipped"] + exp["refused"])
        assert listed == sorted(r for r in files if r.startswith(folder + "/")), folder
    assert len(doc["folders"]["mixed"]["backups"]) == 3 and doc["folders"]["mixed"]["skipped"] == ["mixed/notes.md"]

    # ---- sizes -------------------------------------------------------------------------------
    # The bombs are as big as deflate's ~1030:1 limit makes them (BOMB_MIB): checked by ratio.
    total = bombs = 0
    for rel in sorted(on_disk | {"expected.json", "README.md"}):
        p = os.path.join(out, rel)
        if os.path.exists(p):
            size = os.path.getsize(p)
            if rel.startswith("hostile/bomb."):
                assert size * 1000 < files[rel]["inflated_bytes"], f"{rel}: {size} B is no bomb"
                bombs += size
                continue
            total += size
            assert size < MAX_FILE, f"{rel}: {size} B"
    assert total < MAX_TOTAL, f"containers total {total} B (bombs not counted)"
    total += bombs
    print(f"ok  {n_snap} snapshot containers byte-identical to the source; total {total} B in {len(on_disk)} files")


if __name__ == "__main__":
    main()
