# expect: ok
# A listening socket bound to an abstract name, parked in flight: the name outlives the run
# unless it is collected, a channel to every later run of the jail (the run after checks).
import socket

listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
listener.bind("\0arbiter-parked-name")
listener.listen()
a, b = socket.socketpair()
socket.send_fds(b, [b"x"], [a.fileno(), listener.fileno()])
listener.close()
a.close()
b.close()
print("parked a listener")
