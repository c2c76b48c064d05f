# expect: output_limit, ok
import os
import time

if os.fork() == 0:
    os.setsid()
    chunk = b"d" * 65536
    while True:
        os.write(1, chunk)
time.sleep(0.5)
