"""A real S3-compatible server on 127.0.0.1 for the object-storage tests.

Starts moto's S3 server with IAM authentication enforced (after the setup
calls below, requests must be signed with a key moto issued), creates a
bucket of fixtures, and a small HTTP proxy in front of it that drops the
connection half-way through the first download of each large object, so
resumed downloads are exercised. Prints one JSON line with the ports and
credentials, then serves until stdin closes.

    python3 tests/support/s3_server.py <testdata dir> [open|auth]

`auth` enforces signatures and IAM keys (moto lists no objects in that mode:
its ListObjectsV2 signature check is broken, for boto3 too), so the object
tests use `open` and the credential test uses `auth` on a single object.
"""
import http.client
import http.server
import io
import json
import os
import socket
import sys
import threading
import zipfile

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


class DroppingProxy(http.server.BaseHTTPRequestHandler):
    """Forwards to moto unchanged (Host included, so signatures stay valid).
    The first GET of an object larger than 50 MB is cut after 10 MB; every GET
    of a key containing `always-drop` is cut half-way. `/__dropped` lists the
    paths cut so far."""

    upstream = None
    dropped = set()
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        if self.path == "/__dropped":
            body = json.dumps(sorted(self.dropped)).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        self.forward()

    def do_HEAD(self):
        self.forward()

    def do_PUT(self):
        self.forward()

    def forward(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0) or 0))
        conn = http.client.HTTPConnection("127.0.0.1", self.upstream, timeout=60)
        conn.request(self.command, self.path, body=body, headers=dict(self.headers))
        resp = conn.getresponse()
        data = resp.read()
        big_first_time = len(data) > (50 << 20) and self.path not in self.dropped
        cut = self.command == "GET" and (big_first_time or "always-drop" in self.path)
        self.send_response(resp.status)
        for k, v in resp.getheaders():
            if k.lower() not in ("transfer-encoding", "connection"):
                self.send_header(k, v)
        self.end_headers()
        if cut:
            self.dropped.add(self.path)
            self.wfile.write(data[: min(10 << 20, len(data) // 2)])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        if self.command != "HEAD":
            self.wfile.write(data)

    def log_message(self, *args):
        pass


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

    proxy_port = free_port()
    DroppingProxy.upstream = port
    proxy = http.server.ThreadingHTTPServer(("127.0.0.1", proxy_port), DroppingProxy)
    threading.Thread(target=proxy.serve_forever, daemon=True).start()

    print(json.dumps({"endpoint": endpoint, "proxy": f"http://127.0.0.1:{proxy_port}",
                      "access_key": creds["aws_access_key_id"], "secret_key": creds["aws_secret_access_key"]}),
          flush=True)
    sys.stdin.read()
    proxy.shutdown()
    server.stop()


if __name__ == "__main__":
    main()
