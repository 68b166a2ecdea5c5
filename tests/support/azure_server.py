"""A real Azure Blob Storage emulator (Azurite, from npm) on 127.0.0.1 for the
object-storage tests, with a container of fixtures uploaded through the
official Python SDK, behind a proxy that records request methods (proxy.py).
Prints one JSON line with the blob endpoint, then serves until stdin closes.

    python3 tests/support/azure_server.py <testdata dir>
"""
import json
import os
import socket
import subprocess
import sys
import tempfile
import time

from azure.storage.blob import BlobServiceClient

import proxy  # tests/support/proxy.py

# Azurite's well-known development account (public, documented by Microsoft).
ACCOUNT = "devstoreaccount1"
KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main():
    testdata = sys.argv[1]
    port = free_port()
    with tempfile.TemporaryDirectory() as location:
        server = subprocess.Popen(
            ["azurite-blob", "--blobHost", "127.0.0.1", "--blobPort", str(port), "--location", location,
             "--silent", "--skipApiVersionCheck", "--loose"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.time() + 30
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    if time.time() > deadline:
                        raise
                    time.sleep(0.2)
            endpoint = f"http://127.0.0.1:{port}/{ACCOUNT}"
            conn = (f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={KEY};"
                    f"BlobEndpoint={endpoint};")
            client = BlobServiceClient.from_connection_string(conn)
            container = client.create_container("backups")
            snapshot = open(os.path.join(testdata, "etcd35-scan.snapshot.db"), "rb").read()
            container.upload_blob("etcd/etcd35-scan.snapshot.db", snapshot)
            k3s = open(os.path.join(testdata, "containers/k3s/etcd-snapshot-node-1-1795800000.zip"), "rb").read()
            container.upload_blob("etcd/etcd-snapshot-node-1-1795800000.zip", k3s, metadata={"k3s_node_name": "node-1"})
            # etcd-audit goes through a proxy that records every request's method.
            proxy_port = proxy.start(port)
            print(json.dumps({"url": f"http://127.0.0.1:{proxy_port}", "direct": f"http://127.0.0.1:{port}"}),
                  flush=True)
            sys.stdin.read()
        finally:
            server.terminate()
            server.wait()


if __name__ == "__main__":
    main()
