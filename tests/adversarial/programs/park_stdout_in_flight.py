# expect: ok
# A unix socket that holds itself in its own queue (SCM_RIGHTS), with stdout riding along: no
# process owns it, so the pipe stays open after the run; the run must still end at once.
import os
import socket

a, b = socket.socketpair()
socket.send_fds(b, [b"x"], [a.fileno(), 1, 2])
a.close()
b.close()
print("parked stdout", flush=True)
os.close(1)
os.close(2)
