# expect: ok
import socket

AF_VSOCK = 40
attempts = [(socket.AF_PACKET, socket.SOCK_RAW, 0), (socket.AF_NETLINK, socket.SOCK_RAW, 0),
            (socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP), (socket.AF_INET6, socket.SOCK_DGRAM, 0),
            (socket.AF_INET, socket.SOCK_DGRAM, 0), (AF_VSOCK, socket.SOCK_STREAM, 0)]
for family, kind, proto in attempts:
    try:
        socket.socket(family, kind, proto)
        print("ESCAPED: opened socket family", family)
    except OSError:
        pass
print("done")
