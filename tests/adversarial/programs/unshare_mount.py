# expect: ok
import ctypes
import os

libc = ctypes.CDLL(None, use_errno=True)
CLONE_NEWUSER, CLONE_NEWNS, CLONE_NEWNET, CLONE_NEWPID = 0x10000000, 0x20000, 0x40000000, 0x20000000
for flags in (CLONE_NEWUSER, CLONE_NEWNS, CLONE_NEWNET, CLONE_NEWUSER | CLONE_NEWNS, CLONE_NEWPID):
    if libc.unshare(flags) == 0:
        print("ESCAPED: unshare", hex(flags))
if libc.mount(b"tmpfs", b"/work", b"tmpfs", 0, None) == 0:
    print("ESCAPED: mount")
if libc.umount2(b"/proc", 2) == 0:
    print("ESCAPED: umount")
if libc.chroot(b"/tmp") == 0:
    print("ESCAPED: chroot")
fd = os.open("/proc/1/ns/mnt", os.O_RDONLY) if os.path.exists("/proc/1/ns/mnt") else -1
if fd >= 0 and libc.setns(fd, 0) == 0:
    print("ESCAPED: setns")
# clone() with a namespace flag, straight through the syscall
if libc.syscall(56, CLONE_NEWUSER | 17, 0, 0, 0, 0) == 0:
    os._exit(0)
print("done")
