# expect: ok
# Runs at the same time as snoop_concurrent.py in another jail; keeps a secret in its files.
import time

for path in ("/work/secret.txt", "/tmp/secret.txt", "/dev/shm/secret.txt"):
    with open(path, "w") as f:
        f.write("SECRET-" + "victim")
time.sleep(1.2)
print("victim done")
