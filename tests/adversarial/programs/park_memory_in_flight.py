# expect: ok
# About 165 MiB of memfds and /dev/shm files parked in flight: still charged to the jail after
# the run unless collected, so the next run in the jail would start with them on its account.
import os
import socket

MIB = 1 << 20
parked = []
for _ in range(8):
    fd = os.memfd_create("pinned")
    os.write(fd, b"\1" * (15 * MIB))
    parked.append(fd)
for n in range(3):
    fd = os.open(f"/dev/shm/pinned{n}", os.O_RDWR | os.O_CREAT, 0o600)
    os.write(fd, b"\1" * (15 * MIB))
    parked.append(fd)
a, b = socket.socketpair()
socket.send_fds(b, [b"x"], [a.fileno(), *parked])
for fd in parked:
    os.close(fd)
a.close()
b.close()
print("parked", len(parked) * 15, "MiB")
