# expect: ok
status = dict(line.split(":\t", 1) for line in open("/proc/self/status").read().splitlines() if ":\t" in line)
for key in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
    if int(status[key], 16) != 0:
        print("ESCAPED: capability set", key, status[key].strip())
if status["NoNewPrivs"].strip() != "1" or status["Seccomp"].strip() != "2":
    print("ESCAPED: no_new_privs or seccomp missing", status["NoNewPrivs"], status["Seccomp"])
print("uid", status["Uid"].split()[0])
