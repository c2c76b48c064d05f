# expect: ok
import os
import stat

for path in ["/dev/mem", "/dev/kmem", "/dev/port", "/dev/sda", "/dev/vda", "/dev/nvme0n1", "/dev/kmsg", "/dev/fuse",
             "/dev/kvm", "/dev/net/tun", "/dev/loop0", "/dev/console"]:
    try:
        os.close(os.open(path, os.O_RDONLY))
        print("ESCAPED: opened", path)
    except OSError:
        pass
for name, kind in (("/tmp/mem", stat.S_IFCHR), ("/work/sda", stat.S_IFBLK)):
    try:
        os.mknod(name, kind | 0o666, os.makedev(1, 1))
        print("ESCAPED: mknod", name)
    except OSError:
        pass
print("done")
