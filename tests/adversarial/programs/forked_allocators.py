# expect: ok, runtime_error, memory_limit, time_limit
# limits: wall_time_s=10 cpu_time_s=5  (filling memory is slow on a loaded machine)
# Eight children each below the per-process limit, together far above the run's memory: with
# cgroups a memory verdict; with rlimits alone nothing caps the sum (the outer cgroup does here),
# and touching ~1 GiB may also outlast the wall limit on a loaded machine.
import os

kids = []
for _ in range(8):
    pid = os.fork()
    if pid == 0:
        try:
            block = bytearray(120 << 20)
            for i in range(0, len(block), 4096):
                block[i] = 1
        finally:
            os._exit(0)
    kids.append(pid)
for pid in kids:
    os.waitpid(pid, 0)
