# expect: ok
# Second of the pair: nothing the first run planted may be visible or run.
import collections  # noqa: F401
import math  # noqa: F401
import os

for path in ["/tmp/planted-marker", "/work/sitecustomize.py", "/tmp/sitecustomize.py", "/dev/shm/sitecustomize.py"]:
    if os.path.exists(path):
        print("ESCAPED: still there:", path)
print("clean")
