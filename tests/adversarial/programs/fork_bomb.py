# expect: runtime_error, time_limit
import os

while True:
    os.fork()
