# expect: ok
# The kernel caps descriptors in flight per user (its RLIMIT_NOFILE), and every jail's programs
# are one host user: parking that many blocks honest descriptor passing in every jail.
import os
import socket

a, b = socket.socketpair()
socket.send_fds(b, [b"x"], [a.fileno()])
parked = 1
r, w = os.pipe()
while True:
    try:
        socket.send_fds(b, [b"x"], [r, w])
    except OSError:
        break
    parked += 2
a.close()
b.close()
print("parked", parked, "descriptors")
