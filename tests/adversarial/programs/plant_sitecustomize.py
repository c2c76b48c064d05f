# expect: ok
# First of a pair run in the same jail: plants start-up hooks where a later Python might look.
import os

hook = "print('ESCAPED: planted hook ran in a later run')\n"
for d in ["/work", "/tmp", "/dev/shm", "/tmp/.local/lib/python3.11/site-packages",
          "/usr/lib/python3/dist-packages", "/usr/local/lib/python3.11/dist-packages"]:
    for name in ("sitecustomize.py", "usercustomize.py", "collections.py", "math.py"):
        try:
            os.makedirs(d, exist_ok=True)
            with open(os.path.join(d, name), "w") as f:
                f.write(hook)
        except OSError:
            pass
with open("/tmp/planted-marker", "w") as f:
    f.write("x")
print("planted")
