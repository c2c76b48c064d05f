# expect: memory_limit
# limits: wall_time_s=10 cpu_time_s=5  (filling memory is slow on a loaded machine)
import mmap

MAP_NORESERVE = 0x4000  # not exported by Python 3.11's mmap module
m = mmap.mmap(-1, 1 << 40, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | MAP_NORESERVE)
for offset in range(0, len(m), 4096):
    m[offset] = 1
