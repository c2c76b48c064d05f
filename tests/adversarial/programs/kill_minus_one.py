# expect: ok
# kill(-1) reaches every process this one may signal: only its own run's.
import os
import signal

for sig in (signal.SIGKILL, signal.SIGTERM):
    try:
        os.kill(-1, sig)
    except OSError:
        pass
print("still here")
