# expect: ok
# port.txt holds the port of a listener the test opened on the host side's 127.0.0.1.
import socket

port = int(open("/work/port.txt").read())
for family, addr in ((socket.AF_INET, ("127.0.0.1", port)), (socket.AF_INET6, ("::1", port))):
    try:
        s = socket.socket(family, socket.SOCK_STREAM)
        s.settimeout(1)
        s.connect(addr)
        print("ESCAPED: connected to the host listener", addr)
    except OSError as exc:
        print("blocked", family.name, exc.errno)
