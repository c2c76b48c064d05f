# expect: ok
# The launcher's environment holds ARBITER_CANARY; it must be nowhere in here.
import os

if any("canary" in (k + v).lower() for k, v in os.environ.items()):
    print("ESCAPED: canary in os.environ")
for pid in [p for p in os.listdir("/proc") if p.isdigit()] + ["self", "1"]:
    for name in ("environ", "cmdline"):
        try:
            if b"canary" in open(f"/proc/{pid}/{name}", "rb").read().lower():
                print("ESCAPED: canary in", pid, name)
        except OSError:
            pass
print("done")
