"""A TCP proxy on 127.0.0.1 that relays to an upstream port and closes both
sides once the server has sent LIMIT bytes: a server dying mid-stream.

    python3 tests/support/cut_proxy.py UPSTREAM_PORT LIMIT
Prints its own port, then serves until killed.
"""
import socket
import sys
import threading


def relay(src, dst, counter=None, limit=None):
    try:
        while True:
            data = src.recv(16384)
            if not data:
                break
            if counter is not None:
                room = limit - counter[0]
                if room <= 0:
                    break
                data = data[:room]
                counter[0] += len(data)
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def main():
    upstream, limit = int(sys.argv[1]), int(sys.argv[2])
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    print(server.getsockname()[1], flush=True)
    sent = [0]  # shared by all connections: the "server" dies once, for good
    while True:
        client, _ = server.accept()
        up = socket.create_connection(("127.0.0.1", upstream))
        threading.Thread(target=relay, args=(client, up), daemon=True).start()
        threading.Thread(target=relay, args=(up, client, sent, limit), daemon=True).start()


if __name__ == "__main__":
    main()
