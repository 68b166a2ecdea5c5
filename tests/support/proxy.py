"""An HTTP proxy for the object-storage tests: forwards every request to the
server behind it unchanged (Host included, so signatures stay valid) and
records the method of each, so a test can prove that etcd-audit only reads
(GET, HEAD). With `dropping`, the first answer of more than 20 MB to a GET
of an object is cut after 10 MB, and every GET of a key containing
`always-drop` half-way.

    GET /__methods   {"GET": n, "HEAD": m, ...} since the proxy started
    GET /__dropped   the paths cut so far
    GET /__ranges    [path, Range header or null] of every GET so far
"""
import collections
import http.client
import http.server
import json
import socket
import threading


def start(upstream_port, dropping=False, gcs_host_style=False):
    """Serves on a free port of 127.0.0.1 in a thread; returns the port. With
    `gcs_host_style`, a path-style XML API request (`/BUCKET/KEY`, as
    object_store sends it) goes upstream host-style (`Host:
    BUCKET.storage.googleapis.com`, path `/KEY`), the form fake-gcs-server
    answers; JSON API paths (`/storage/`, `/upload/`) pass unchanged."""

    class Proxy(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        methods = collections.Counter()
        dropped = set()
        ranges = []
        lock = threading.Lock()

        def reply(self, obj):
            body = json.dumps(obj).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            if self.path == "/__dropped":
                return self.reply(sorted(self.dropped))
            if self.path == "/__methods":
                return self.reply(dict(self.methods))
            if self.path == "/__ranges":
                return self.reply(self.ranges)
            self.forward()

        def do_HEAD(self):
            self.forward()

        def do_PUT(self):
            self.forward()

        def do_POST(self):
            self.forward()

        def do_DELETE(self):
            self.forward()

        def do_PATCH(self):
            self.forward()

        def forward(self):
            with self.lock:
                self.methods[self.command] += 1
                if self.command == "GET":
                    self.ranges.append([self.path, self.headers.get("Range")])
            body = self.rfile.read(int(self.headers.get("Content-Length", 0) or 0))
            path, headers = self.path, dict(self.headers)
            if gcs_host_style and not path.startswith(("/storage/", "/upload/")):
                bucket, _, rest = path.lstrip("/").partition("/")
                bucket, _, query = bucket.partition("?")
                path = "/" + rest if rest else "/" + ("?" + query if query else "")
                headers = {k: v for k, v in headers.items() if k.lower() != "host"}
                headers["Host"] = f"{bucket}.storage.googleapis.com"
            conn = http.client.HTTPConnection("127.0.0.1", upstream_port, timeout=60)
            conn.request(self.command, path, body=body, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
            with self.lock:
                big_first_time = len(data) > (20 << 20) and self.path not in self.dropped
                if dropping and big_first_time:
                    self.dropped.add(self.path)
            cut = dropping and self.command == "GET" and (big_first_time or "always-drop" in self.path)
            self.send_response(resp.status)
            headers = [(k, v) for k, v in resp.getheaders() if k.lower() not in ("transfer-encoding", "connection")]
            for k, v in headers:
                self.send_header(k, v)
            # A chunked answer was read whole: say its length instead.
            if self.command != "HEAD" and not any(k.lower() == "content-length" for k, _ in headers):
                self.send_header("Content-Length", str(len(data)))
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

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Proxy)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return port
