# expect: ok
# TCP/UDP on the jail's own lo and route netlink are allowed (Limits.network's default); raw,
# packet, other netlink protocols and every other family are not.
import socket

AF_VSOCK, SOCK_PACKET, NETLINK_SOCK_DIAG, NETLINK_KOBJECT_UEVENT = 40, 10, 4, 15
attempts = [(socket.AF_PACKET, socket.SOCK_RAW, 0), (socket.AF_PACKET, socket.SOCK_DGRAM, 0),
            (socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_SOCK_DIAG),
            (socket.AF_NETLINK, socket.SOCK_DGRAM, NETLINK_KOBJECT_UEVENT),
            (socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP), (socket.AF_INET6, socket.SOCK_RAW, 0),
            (socket.AF_INET, SOCK_PACKET, 0), (socket.AF_INET, socket.SOCK_RAW | socket.SOCK_CLOEXEC, 255),
            (AF_VSOCK, socket.SOCK_STREAM, 0), (socket.AF_BLUETOOTH, socket.SOCK_RAW, 0)]
for family, kind, proto in attempts:
    try:
        socket.socket(family, kind, proto)
        print("ESCAPED: opened socket family", family, kind, proto)
    except OSError:
        pass
print("done")
