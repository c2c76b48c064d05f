# expect: time_limit
# SIGXCPU is the soft CPU limit's warning; ignoring it must still end in the hard limit's SIGKILL.
import signal

for sig in (signal.SIGTERM, signal.SIGXCPU, signal.SIGINT, signal.SIGHUP):
    signal.signal(sig, signal.SIG_IGN)
while True:
    pass
