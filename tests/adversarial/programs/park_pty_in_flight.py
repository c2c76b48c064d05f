# expect: ok
# A pty pair with a secret in its buffer, parked in flight: a later run in the same jail that
# opens the same /dev/pts number must not read it (the run after this one checks).
import os
import socket

master, slave = os.openpty()
os.write(master, b"SECRET-OF-AN-EARLIER-RUN\n")
a, b = socket.socketpair()
socket.send_fds(b, [b"x"], [a.fileno(), master, slave])
for f in (master, slave):
    os.close(f)
a.close()
b.close()
print("parked", os.ttyname(0) if os.isatty(0) else "a pty")
