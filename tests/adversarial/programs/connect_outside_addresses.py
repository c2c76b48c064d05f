# expect: ok
# The jail's network namespace has lo only: no route to the host's other addresses, a gateway or
# a metadata service, over TCP or UDP.
import socket

targets = [("169.254.169.254", 80), ("10.0.2.2", 22), ("172.17.0.1", 2375), ("8.8.8.8", 53), ("192.168.0.1", 80)]
for host, port in targets:
    for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
        s = socket.socket(socket.AF_INET, kind)
        s.settimeout(1)
        try:
            s.connect((host, port))
            if kind == socket.SOCK_DGRAM:
                s.send(b"x")
            print("ESCAPED: reached", host, port, kind)
        except OSError as exc:
            print("unreachable", host, exc.errno)
        finally:
            s.close()
try:
    socket.create_connection(("::ffff:127.0.0.1", 1), timeout=1)
    print("ESCAPED: connected to a v4-mapped loopback port nobody listens on")
except OSError:
    pass
print("done")
