# expect: memory_limit
# limits: wall_time_s=10 cpu_time_s=5  (filling memory is slow on a loaded machine)
chunks = []
while True:
    chunks.append(bytearray(8 << 20))
