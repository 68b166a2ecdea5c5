"""Fill a real etcd with Kubernetes Secrets for scripts/bench-large.sh.

Values are encoded exactly as kube-apiserver stores them (testdata/gen/k8senc.py):
mostly aescbc, some aesgcm and secretbox, a few plaintext. Writes go in
transactions of 100 puts through etcd's JSON gateway on 127.0.0.1.
"""
import base64
import os
import random
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "testdata", "gen"))
import k8senc as k  # noqa: E402

KEY = bytes(range(32))  # the bench config's key for every provider (see bench-large.sh)


def value(i: int, etcd_key: bytes, size: int, rand: random.Random) -> bytes:
    ns, name = f"ns-{i % 500}", f"secret-{i}"
    plain = k.secret_pb(name, ns, {"blob": rand.randbytes(size)})
    roll = i % 100
    if os.environ.get("BENCH_GCM_ONLY"):  # gcm-write-budget: every value under one aesgcm key
        return k.aesgcm("bench-gcm", KEY, plain, etcd_key)
    if roll < 80:
        return k.aescbc("bench-cbc", KEY, plain)
    if roll < 88:
        return k.aesgcm("bench-gcm", KEY, plain, etcd_key)
    if roll < 95:
        return k.secretbox("bench-sb", KEY, plain)
    return plain


def main():
    port, count, size = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    etcd = k.Etcd(port)
    rand = random.Random(1)
    b64 = lambda b: base64.b64encode(b).decode()
    for start in range(0, count, 100):
        ops = []
        for i in range(start, min(start + 100, count)):
            key = f"/registry/secrets/ns-{i % 500}/secret-{i}".encode()
            ops.append({"request_put": {"key": b64(key), "value": b64(value(i, key, size, rand))}})
        etcd.call("kv/txn", {"success": ops})
        if start % 20000 == 0:
            print(f"  {start}/{count} secrets written", flush=True)


if __name__ == "__main__":
    main()
