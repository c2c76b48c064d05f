# expect: ok
import os
import signal

for sig in (signal.SIGKILL, signal.SIGTERM, signal.SIGINT, signal.SIGSTOP):
    for pid in (1, os.getppid()):
        try:
            os.kill(pid, sig)
        except OSError:
            pass
print("supervisor ignored us")
