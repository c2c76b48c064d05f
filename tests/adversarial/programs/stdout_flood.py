# expect: output_limit
import sys

chunk = "y" * 65536
while True:
    sys.stdout.write(chunk)
