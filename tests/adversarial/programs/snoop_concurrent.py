# expect: ok
# Looks for a concurrent run's secret everywhere it can see.
import os
import time

time.sleep(0.3)
roots = ["/work", "/tmp", "/dev/shm", "/"]
roots += [f"/proc/{p}/root" for p in os.listdir("/proc") if p.isdigit()]
roots += [f"/proc/{p}/cwd" for p in os.listdir("/proc") if p.isdigit()]
for root in roots:
    for sub in ("", "work", "tmp", "dev/shm"):
        d = os.path.join(root, sub)
        try:
            for name in os.listdir(d):
                if name == "secret.txt" and "SECRET-" in open(os.path.join(d, name)).read():
                    print("ESCAPED: found the other run's secret in", d)
        except OSError:
            pass
others = sorted(int(p) for p in os.listdir("/proc") if p.isdigit() and int(p) != os.getpid())
print("other pids visible", others)
