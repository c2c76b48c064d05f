# expect: ok
import ctypes
import os

libc = ctypes.CDLL(None, use_errno=True)
PTRACE_TRACEME, PTRACE_ATTACH = 0, 16
for pid in (1, os.getppid()):
    if libc.ptrace(PTRACE_ATTACH, pid, 0, 0) == 0:
        print("ESCAPED: attached to", pid)
if os.fork() == 0:
    if libc.ptrace(PTRACE_TRACEME, 0, 0, 0) == 0:
        print("ESCAPED: traceme", flush=True)
    os._exit(0)
os.wait()
print("done")
