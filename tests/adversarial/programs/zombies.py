# expect: ok, runtime_error
# Never-reaped children count against the process limit and vanish with the run.
import os

made = 0
try:
    for _ in range(100000):
        if os.fork() == 0:
            os._exit(0)
        made += 1
except OSError:
    pass
print("zombies", made)
