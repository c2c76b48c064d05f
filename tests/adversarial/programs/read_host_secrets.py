# expect: ok
import os

for path in ["/etc/shadow", "/etc/gshadow", "/root/.bashrc", "/root/.ssh", "/home", "/work/main", "/var/log",
             "/proc/1/root/etc/shadow", "/proc/1/environ", "/run", "/var/run/docker.sock", "/boot"]:
    try:
        if os.path.isdir(path):
            entries = os.listdir(path)
            if entries:
                print("ESCAPED: listed", path, entries[:3])
        else:
            data = open(path, "rb").read(64)
            if data:
                print("ESCAPED: read", path)
    except OSError:
        pass
try:
    if "root:" in open("/etc/passwd").read():
        print("ESCAPED: the host's account list is visible")
except OSError:
    pass
print("done")
