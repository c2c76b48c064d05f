# expect: ok
# The main process exits at once; a child that keeps stdout open must not keep the run alive.
import os
import time

if os.fork() == 0:
    time.sleep(3600)
print("parent done")
