"""The floor of any proxy on this machine: bytes relayed between two TCP connections by
`splice(2)` (kernel to kernel, no copy into this process), one thread per direction, no HTTP
parsed at all. Whatever a real proxy does (routing, header rules, a sandbox) it cannot beat
this; bench_endpoints measures it beside the proxy, so a target it misses too is the machine's.

`python relay_floor.py UPSTREAM_PORT` prints {"listening": PORT} once it accepts."""

from __future__ import annotations

import fcntl
import json
import os
import socket
import sys
import threading

F_SETPIPE_SZ = 1031
CHUNK = 1 << 20


def pump(src: socket.socket, dst: socket.socket) -> None:
    """src -> a pipe -> dst, until src ends; then dst's sending side is closed."""
    read_end, write_end = os.pipe()
    try:
        fcntl.fcntl(read_end, F_SETPIPE_SZ, CHUNK)
        while n := os.splice(src.fileno(), write_end, CHUNK, flags=os.SPLICE_F_MOVE):
            while n:
                n -= os.splice(read_end, dst.fileno(), n, flags=os.SPLICE_F_MOVE)
    except OSError:
        pass  # either side went away
    finally:
        os.close(read_end)
        os.close(write_end)
        try:
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass


def relay(client: socket.socket, upstream_port: int) -> None:
    with client, socket.create_connection(("127.0.0.1", upstream_port)) as upstream:
        for sock in (client, upstream):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        back = threading.Thread(target=pump, args=(upstream, client), daemon=True)
        back.start()
        pump(client, upstream)
        back.join()


def main() -> None:
    upstream_port = int(sys.argv[1])
    listener = socket.create_server(("127.0.0.1", 0))
    print(json.dumps({"listening": listener.getsockname()[1]}), flush=True)
    while True:
        client, _ = listener.accept()
        threading.Thread(target=relay, args=(client, upstream_port), daemon=True).start()


if __name__ == "__main__":
    main()
