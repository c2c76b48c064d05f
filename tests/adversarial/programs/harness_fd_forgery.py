# expect: ok
# result_fd run: the harness keeps fd 3 and runs "candidate" code in a child that closed it;
# the child tries every way back to the channel.
import ctypes
import os

pid = os.fork()
if pid == 0:
    os.close(3)
    parent = os.getppid()
    for path in (f"/proc/{parent}/fd/3", f"/proc/{parent}/fdinfo/3", f"/proc/{parent}/mem"):
        try:
            fd = os.open(path, os.O_WRONLY)
            os.write(fd, b"FORGED")
            print("ESCAPED: reopened", path, flush=True)
        except OSError:
            pass
    libc = ctypes.CDLL(None, use_errno=True)
    pidfd = libc.syscall(434, parent, 0)  # pidfd_open
    if pidfd >= 0 and libc.syscall(438, pidfd, 3, 0) >= 0:  # pidfd_getfd
        print("ESCAPED: pidfd_getfd", flush=True)
    os._exit(0)
os.waitpid(pid, 0)
os.write(3, b"genuine")
print("done")
