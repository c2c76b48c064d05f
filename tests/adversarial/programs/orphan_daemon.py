# expect: ok
# A double-forked, setsid'd daemon; the test checks the host afterwards for its marker process.
import os

if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        os.execv("/usr/bin/sleep", ["/usr/bin/sleep", "987.654"])
    os._exit(0)
print("daemon started")
