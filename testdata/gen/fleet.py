"""One cluster's hourly snapshots for the fleet sweep (make-fleet.sh): written
into a real etcd as kube-apiserver stores them (k8senc.py), snapshotted with
etcdctl after each hour. Three Secrets move from the aescbc key "old" to "new"
one by one (hour 3, 5 and 7), so the early snapshots need only "old", the
middle ones both, the late ones only "new". Prints one JSON line per snapshot:
its file, the cluster UID, taken_at (the newest Lease renewal) and the keys
its values need, as this encoder wrote them.

    python3 fleet.py --port PORT --etcdctl BIN --out DIR --cluster NAME --uid UID --hours N --t0 SECONDS
"""
import argparse
import json
import os
import subprocess

import k8senc as k

OLD = bytes(range(40, 72))   # config.yaml holds both (base64)
NEW = bytes(range(140, 172))


def main():
    ap = argparse.ArgumentParser()
    for name in ("--etcdctl", "--out", "--cluster", "--uid"):
        ap.add_argument(name, required=True)
    for name in ("--port", "--hours", "--t0"):
        ap.add_argument(name, type=int, required=True)
    a = ap.parse_args()
    etcd = k.Etcd(a.port)
    P = "/registry"
    etcd.put(f"{P}/namespaces/kube-system", k.namespace_pb("kube-system", uid=a.uid))
    etcd.put(f"{P}/namespaces/kube-node-lease", k.namespace_pb("kube-node-lease"))
    for hour in range(a.hours):
        renew = a.t0 + 3600 * hour
        etcd.put(f"{P}/leases/kube-node-lease/cp-1", k.lease_pb("cp-1", "kube-node-lease", "cp-1", renew))
        needs = set()
        for j in range(3):
            secret = k.secret_pb(f"app-{j}", "default", {"token": f"hour-{hour}-{j}".encode()})
            rotated = hour >= 3 + 2 * j
            name, key = ("new", NEW) if rotated else ("old", OLD)
            etcd.put(f"{P}/secrets/default/app-{j}", k.aescbc(name, key, secret))
            needs.add(f"aescbc:{name}")
        file = f"{a.cluster}-{hour:02d}.db"
        subprocess.run([a.etcdctl, "--endpoints", f"http://127.0.0.1:{a.port}", "snapshot", "save",
                        os.path.join(a.out, file)], check=True, capture_output=True)
        print(json.dumps({"file": file, "uid": a.uid, "taken_at": renew, "needs": sorted(needs)}), flush=True)


if __name__ == "__main__":
    main()
