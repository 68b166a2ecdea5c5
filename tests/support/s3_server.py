"""A real S3-compatible server on 127.0.0.1 for the object-storage tests.

Starts moto's S3 server with IAM authentication enforced (after the setup
calls below, requests must be signed with a key moto issued), creates a
bucket of fixtures, and a small HTTP proxy in front of it (proxy.py) that
records every request's method and drops the connection half-way through the
first download of each large object, so resumed downloads are exercised. Prints one JSON line with the ports and
credentials, then serves until stdin closes.

    python3 tests/support/s3_server.py <testdata dir> [open|auth|many|fleet DIR COUNT]

`fleet DIR COUNT` also puts COUNT objects under fleet/: the snapshots in DIR
(make-fleet.sh), each under COUNT / len(DIR) keys, as backups copied to
several places are (fleet/<copy>/<file>).

`auth` enforces signatures and IAM keys (moto lists no objects in that mode:
its ListObjectsV2 signature check is broken, for boto3 too), so the object
tests use `open` and the credential test uses `auth` on a single object.
"""
import io
import json
import os
import socket
import sys
import zipfile

import proxy  # tests/support/proxy.py

SETUP_CALLS = 4  # create user, put policy, create key, + one spare
if sys.argv[2:] == ["auth"]:
    os.environ["INITIAL_NO_AUTH_ACTION_COUNT"] = str(SETUP_CALLS)
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")

import boto3  # noqa: E402
from moto.server import ThreadedMotoServer  # noqa: E402

BIG_PADDING = 100 << 20


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main():
    testdata = sys.argv[1]
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    admin = boto3.client("iam", endpoint_url=endpoint, aws_access_key_id="setup", aws_secret_access_key="setup")
    admin.create_user(UserName="auditor")
    policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}
    admin.put_user_policy(UserName="auditor", PolicyName="s3", PolicyDocument=json.dumps(policy))
    key = admin.create_access_key(UserName="auditor")["AccessKey"]
    creds = {"aws_access_key_id": key["AccessKeyId"], "aws_secret_access_key": key["SecretAccessKey"]}
    s3 = boto3.client("s3", endpoint_url=endpoint, **creds)
    s3.create_bucket(Bucket="backups")

    snapshot = open(os.path.join(testdata, "etcd35-scan.snapshot.db"), "rb").read()
    s3.put_object(Bucket="backups", Key="single/etcd35-scan.snapshot.db", Body=snapshot)
    zipped = io.BytesIO()
    with zipfile.ZipFile(zipped, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("etcd-snapshot-node-1-1795800000", snapshot)
    meta = {"K3s-Cluster-Id": "c0ffee", "K3s-Node-Name": "node-1"}
    s3.put_object(Bucket="backups", Key="k3s/etcd-snapshot-node-1-1795800000.zip", Body=zipped.getvalue(), Metadata=meta)
    s3.put_object(Bucket="backups", Key="k3s/.metadata/etcd-snapshot-node-1-1795800000.zip",
                  Body=json.dumps({"team": "platform"}).encode())
    s3.put_object(Bucket="backups", Key="k3s/etcd-snapshot-node-2-1795800100", Body=snapshot)
    s3.put_object(Bucket="backups", Key="k3s/README.txt", Body=b"not a backup")
    # A live db file may be longer than its high-water mark: pad the bbolt
    # bytes (trailer removed) with zero pages to make a >100 MB object.
    s3.put_object(Bucket="backups", Key="big/member-db", Body=snapshot[:-32] + bytes(BIG_PADDING))
    s3.put_object(Bucket="backups", Key="flaky/always-drop.db", Body=snapshot)
    # A backup whose Leases say 2026-09-21, uploaded now (Last-Modified): taken-at-disagrees.
    alpha = open(os.path.join(testdata, "clusters", "alpha.db"), "rb").read()
    s3.put_object(Bucket="backups", Key="late/alpha.db", Body=alpha)
    # k3s with embedded etcd, as `--etcd-s3` uploads: the zip, its sidecar, and the token hash
    # (once right, once wrong) in user metadata.
    expected = json.load(open(os.path.join(testdata, "k3s", "expected.json")))
    k3s_zip = open(os.path.join(testdata, "k3s/zip/etcd-snapshot-server-1-1795900000.zip"), "rb").read()
    for prefix, token_hash in [("k3s-real", expected["token_hash"]), ("k3s-wrong-hash", "000000000000")]:
        meta = {"K3s-Cluster-Id": "c0ffee", "K3s-Node-Name": "server-1", "K3s-Token-Hash": token_hash}
        s3.put_object(Bucket="backups", Key=f"{prefix}/etcd-snapshot-server-1-1795900000.zip", Body=k3s_zip,
                      Metadata=meta)
        s3.put_object(Bucket="backups", Key=f"{prefix}/.metadata/etcd-snapshot-server-1-1795900000.zip",
                      Body=json.dumps({"team": "platform"}).encode())

    if sys.argv[2:] == ["many"]:
        # A prefix longer than one listing page (1,000 keys): 1,100 small files that are no
        # backups, and one snapshot listed last.
        for i in range(1100):
            s3.put_object(Bucket="backups", Key=f"many/note-{i:04d}.txt", Body=b"not a backup %d" % i)
        s3.put_object(Bucket="backups", Key="many/zz-snapshot.db", Body=snapshot)

    if sys.argv[2:3] == ["fleet"]:
        folder, count = sys.argv[3], int(sys.argv[4])
        files = sorted(f for f in os.listdir(folder) if f.endswith(".db"))
        bodies = [open(os.path.join(folder, f), "rb").read() for f in files]
        for i in range(count):
            s3.put_object(Bucket="backups", Key=f"fleet/{i // len(files):03d}/{files[i % len(files)]}",
                          Body=bodies[i % len(files)])

    proxy_port = proxy.start(port, dropping=True)

    print(json.dumps({"endpoint": endpoint, "proxy": f"http://127.0.0.1:{proxy_port}",
                      "access_key": creds["aws_access_key_id"], "secret_key": creds["aws_secret_access_key"]}),
          flush=True)
    sys.stdin.read()
    server.stop()


if __name__ == "__main__":
    main()
