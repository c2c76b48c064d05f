# expect: ok
# The test listens on an abstract unix socket in its own network namespace.
import socket

s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
try:
    s.connect("\0arbiter-adversarial-listener")
    print("ESCAPED: reached the host's abstract socket")
except OSError as exc:
    print("blocked", exc.errno)
