# expect: time_limit
import time

time.sleep(3600)
