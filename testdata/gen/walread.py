"""A small independent reader of etcd WAL segments (member/wal/*.wal), used only to build and
verify the forensics fixture. Layout per docs/formats/etcd-bbolt.md §7.

    python3 walread.py FILE.wal...     # prints records, entries and the puts found

Frame: u64 LE length field; record length = low 56 bits; if bit 63 is set, pad = bits 56..58;
then the record and pad zero bytes. A zero length field (or the end of the file) ends the data.
walpb.Record{1 type, 2 crc, 3 data}. The CRC-32C chain: a Crc record (type 4) reseeds the
running CRC (and must equal it, unless it is 0); every other record must carry
crc32c(running, data), which becomes the new running value.
"""

import os
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from k8senc import pb_parse  # noqa: E402

REC_METADATA, REC_ENTRY, REC_STATE, REC_CRC, REC_SNAPSHOT = 1, 2, 3, 4, 5

_T = []
for _i in range(256):
    _c = _i
    for _ in range(8):
        _c = (_c >> 1) ^ 0x82F63B78 if _c & 1 else _c >> 1
    _T.append(_c)


def crc32c(crc: int, data: bytes) -> int:
    """Go's crc32.Update(crc, castagnoli, data)."""
    crc ^= 0xFFFFFFFF
    for b in data:
        crc = _T[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


class WalError(Exception):
    pass


def fields(b: bytes) -> dict:
    """{field: last value} of one protobuf message level."""
    return {f: v for f, _, v in pb_parse(b)}


def read_records(buf: bytes, crc=0):
    """Decode one segment. Returns (records, end, crc): records = [(offset, type, crc, data)],
    end = offset just past the last record (where the zero tail starts), crc = final running
    CRC. Raises WalError on a torn frame or a broken CRC chain."""
    recs, off = [], 0
    while off + 8 <= len(buf):
        lf = struct.unpack_from("<Q", buf, off)[0]
        if lf == 0:
            break
        n = lf & ((1 << 56) - 1)
        pad = (lf >> 56) & 7 if lf >> 63 else 0
        start, end = off + 8, off + 8 + n
        if end + pad > len(buf):
            raise WalError(f"torn frame at {off}: {n}+{pad} bytes announced, {len(buf) - start} left")
        try:
            r = fields(buf[start:end])
        except ValueError as e:
            raise WalError(f"record at {off} does not parse: {e}")
        rtype, rcrc, data = r.get(1, 0), r.get(2, 0), r.get(3, b"")
        if rtype == REC_CRC:
            if crc != 0 and rcrc != crc:
                raise WalError(f"crc record at {off}: {rcrc:#x} != running {crc:#x}")
            crc = rcrc
        else:
            crc = crc32c(crc, data)
            if rcrc != crc:
                raise WalError(f"CRC mismatch at {off} (type {rtype}): record {rcrc:#x}, computed {crc:#x}")
        recs.append((off, rtype, rcrc, data))
        off = end + pad
    return recs, off, crc


def ops(irr: bytes):
    """Puts and deletes of an etcdserverpb.InternalRaftRequest, in order:
    [(op, via, key, value)] with op "put"/"delete", via "put"/"delete_range"/"txn"."""
    out = []

    def txn(t: bytes):
        for f, _, v in pb_parse(t):
            if f not in (2, 3):  # 1 compare, 2 success, 3 failure
                continue
            for g, _, w in pb_parse(v):  # RequestOp oneof
                if g == 2:
                    p = fields(w)
                    out.append(("put", "txn", p.get(1, b""), p.get(2, b"")))
                elif g == 3:
                    out.append(("delete", "txn", fields(w).get(1, b""), None))
                elif g == 4:
                    txn(w)

    for f, _, v in pb_parse(irr):
        if f == 4:
            p = fields(v)
            out.append(("put", "put", p.get(1, b""), p.get(2, b"")))
        elif f == 5:
            out.append(("delete", "delete_range", fields(v).get(1, b""), None))
        elif f == 6:
            txn(v)
    return out


def read_wal(paths):
    """Read segments in order, chaining the CRC across them. Returns a dict with per-file
    record counts/ends, the raft entries and every put/delete found in them."""
    crc, files, entries, found = 0, [], [], []
    for path in paths:
        buf = open(path, "rb").read()
        recs, end, crc = read_records(buf, crc)
        if any(buf[end:]):
            raise WalError(f"{path}: non-zero bytes after the last record at {end}")
        kinds = {}
        for off, rtype, _, data in recs:
            kinds[rtype] = kinds.get(rtype, 0) + 1
            if rtype != REC_ENTRY:
                continue
            e = fields(data)
            etype, term, index, edata = e.get(1, 0), e.get(2, 0), e.get(3, 0), e.get(4, b"")
            entries.append((os.path.basename(path), index, term, etype, len(edata)))
            if etype != 0 or not edata:
                continue
            try:
                found_ops = ops(edata)
            except ValueError:
                continue  # not an InternalRaftRequest
            for op, via, key, value in found_ops:
                found.append({"wal_file": os.path.basename(path), "offset": off, "raft_index": index, "term": term,
                              "op": op, "via": via, "key": key, "value": value})
        files.append({"file": os.path.basename(path), "size": len(buf), "end": end, "records": len(recs),
                      "record_types": kinds})
    return {"files": files, "entries": entries, "ops": found, "crc": crc}


if __name__ == "__main__":
    w = read_wal(sys.argv[1:])
    for f in w["files"]:
        print(f)
    print(f"{len(w['entries'])} entries, {len(w['ops'])} puts/deletes, final crc {w['crc']:#x}")
    for o in w["ops"][:20]:
        print(o["raft_index"], o["term"], o["op"], o["via"], o["key"], (o["value"] or b"")[:24])
