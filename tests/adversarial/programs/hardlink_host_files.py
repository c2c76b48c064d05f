# expect: ok
import os

for src in ["/etc/passwd", "/usr/bin/python3", "/etc/ld.so.cache", "/proc/self/exe"]:
    for dst in ["/work/link", "/tmp/link"]:
        try:
            os.link(src, dst)
            with open(dst, "a") as f:
                f.write("pwned")
            print("ESCAPED: writable hard link to", src)
        except OSError:
            pass
        try:
            os.unlink(dst)
        except OSError:
            pass
print("done")
