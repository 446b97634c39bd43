"""bench.connections: which process holds a server's accepted connections."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

from bench.connections import connections_by_process, established_inodes, split_text

# /proc/net/tcp as the kernel writes it (trimmed to the columns up to the inode): a
# listener on port 8000 (0x1F40), two connections accepted on it, and a client's
# connection from port 8000 elsewhere (its local port is another).
TCP_TABLE = """\
  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F40 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 111
   1: 0100007F:1F40 0100007F:D431 01 00000000:00000000 00:00000000 00000000  1000        0 222
   2: 0100007F:1F40 0100007F:D432 01 00000000:00000000 00:00000000 00000000  1000        0 333
   3: 0100007F:D433 0100007F:1F40 01 00000000:00000000 00:00000000 00000000  1000        0 444
   4: 0100007F:1F40 0100007F:D434 06 00000000:00000000 00:00000000 00000000  1000        0 555
"""


def test_only_established_connections_on_the_port_count() -> None:
    assert established_inodes(TCP_TABLE, 8000) == {222, 333}
    assert established_inodes(TCP_TABLE, 54323) == {444}
    assert established_inodes(TCP_TABLE, 9000) == set()


def test_the_split_lists_the_processes_that_hold_connections_most_first() -> None:
    assert split_text([3, 5]) == "5 + 3"
    assert split_text([4, 0, 4]) == "4 + 4"
    assert split_text([0]) == "none"


_SERVER = """
import socket, sys
listener = socket.socket()
listener.bind(("127.0.0.1", 0))
listener.listen()
print(listener.getsockname()[1], flush=True)
held = [listener.accept()[0] for _ in range(int(sys.argv[1]))]
print("accepted", flush=True)
sys.stdin.read()
"""


def test_a_server_process_is_seen_holding_the_connections_it_accepted() -> None:
    server = subprocess.Popen([sys.executable, "-c", _SERVER, "3"], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    clients: list[socket.socket] = []
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline())
        clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(3)]
        assert server.stdout.readline() == "accepted\n"
        # This process's own ends of them are on other local ports: not counted.
        assert connections_by_process(port, [server.pid, os.getpid()]) == {
            server.pid: 3, os.getpid(): 0}
    finally:
        for client in clients:
            client.close()
        server.kill()
        server.wait()
