# expect: runtime_error
with open("/work/big", "wb") as f:
    for _ in range(1024):
        f.write(b"\0" * (1 << 20))
