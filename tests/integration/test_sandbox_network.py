"""`Limits.network`: a private loopback inside the jail, never the host's; raw and packet never."""

from __future__ import annotations

import shutil
import socket
import threading

import pytest

from sandbox import Limits, PoolConfig, RunRequest, Sandbox, Status

pytestmark = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is not installed")

LOOPBACK = Limits(wall_time_s=5.0, cpu_time_s=2.0, memory_mib=256)
NO_NETWORK = Limits(wall_time_s=5.0, cpu_time_s=2.0, memory_mib=256, network="none")

SERVE_AND_CONNECT = """
import socket, threading
for family, host in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
    server = socket.create_server((host, 0), family=family)
    def echo():
        conn, _ = server.accept()
        conn.sendall(conn.recv(100).upper())
        conn.close()
    t = threading.Thread(target=echo)
    t.start()
    with socket.create_connection(server.getsockname()[:2], timeout=2) as client:
        client.sendall(b"ping")
        print(family.name, client.recv(100).decode())
    t.join()
udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
udp.bind(("127.0.0.1", 0))
udp.sendto(b"datagram", udp.getsockname())
print(udp.recv(100).decode())
print(socket.if_nameindex())
"""


@pytest.fixture(scope="module")
def box():
    with Sandbox(PoolConfig(pool_size=1)) as sandbox:
        yield sandbox


def test_program_serves_and_connects_on_its_own_loopback(box):
    result = box.run(RunRequest("python", SERVE_AND_CONNECT, limits=LOOPBACK))
    assert result.status is Status.OK, result.stderr
    assert result.stdout.splitlines() == ["AF_INET PING", "AF_INET6 PING", "datagram", "[(1, 'lo')]"]


def test_program_cannot_reach_a_listener_on_the_hosts_loopback(box):
    listener = socket.create_server(("127.0.0.1", 0))
    accepted: list[object] = []
    listener.settimeout(0.2)
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                accepted.append(listener.accept())
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept)
    thread.start()
    port = listener.getsockname()[1]
    source = (f"import socket\ntry:\n    socket.create_connection(('127.0.0.1', {port}), timeout=2)\n"
              "    print('connected')\nexcept OSError as exc:\n    print('refused', exc.errno)\n")
    try:
        result = box.run(RunRequest("python", source, limits=LOOPBACK))
    finally:
        stop.set()
        thread.join()
        listener.close()
    assert result.status is Status.OK, result.stderr
    assert result.stdout.startswith("refused") and not accepted


def test_network_none_denies_inet_sockets(box):
    source = ("import socket\nfor family in (socket.AF_INET, socket.AF_INET6, socket.AF_NETLINK):\n"
              "    try:\n        socket.socket(family, socket.SOCK_DGRAM)\n        print('opened', family.name)\n"
              "    except OSError as exc:\n        print('denied', family.name, exc.errno)\n"
              "a, b = socket.socketpair()\nprint('unix ok')\n")
    result = box.run(RunRequest("python", source, limits=NO_NETWORK))
    assert result.stdout.splitlines() == ["denied AF_INET 1", "denied AF_INET6 1", "denied AF_NETLINK 1", "unix ok"]


@pytest.mark.parametrize("limits", [LOOPBACK, NO_NETWORK], ids=["private_loopback", "none"])
def test_raw_packet_and_other_families_are_denied(box, limits):
    source = """
import socket
attempts = [(socket.AF_PACKET, socket.SOCK_RAW, 0), (socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP),
            (socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6), (socket.AF_INET, 10, 0),  # SOCK_PACKET
            (socket.AF_INET | 0, socket.SOCK_RAW | socket.SOCK_NONBLOCK, 255),
            (socket.AF_NETLINK, socket.SOCK_RAW, 4), (socket.AF_NETLINK, socket.SOCK_DGRAM, 15),
            (40, socket.SOCK_STREAM, 0), (38, socket.SOCK_SEQPACKET, 0), (44, socket.SOCK_RAW, 0), (200, 1, 0)]
for family, kind, proto in attempts:
    try:
        socket.socket(family, kind, proto)
        print("opened", family, kind, proto)
    except OSError as exc:
        print(exc.errno)
"""
    result = box.run(RunRequest("python", source, limits=limits))
    assert result.status is Status.OK, result.stderr
    assert set(result.stdout.split()) == {"1"}
