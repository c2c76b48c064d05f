# expect: ok
import os

names = [line.split(":")[0].strip() for line in open("/proc/net/dev").read().splitlines()[2:]]
if names != ["lo"]:
    print("ESCAPED: interfaces", names)
if os.path.exists("/sys/class/net") and set(os.listdir("/sys/class/net")) - {"lo"}:
    print("ESCAPED: /sys/class/net", os.listdir("/sys/class/net"))
print("interfaces", names)
