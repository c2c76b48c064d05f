# expect: ok

targets = ["/usr/pwned", "/etc/pwned", "/pwned", "/bin/pwned", "/lib/pwned", "/proc/sys/kernel/hostname",
           "/proc/sysrq-trigger", "/sys/pwned", "/dev/pwned", "/work/../pwned", "/proc/self/oom_score_adj"]
for path in targets:
    try:
        with open(path, "w") as f:
            f.write("-1000" if "oom" in path else "pwned")
        if "oom" in path and open(path).read().strip() != "-1000":
            continue
        print("ESCAPED: wrote", path)
    except OSError:
        pass
print("done")
