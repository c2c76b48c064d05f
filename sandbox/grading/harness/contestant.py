"""The untrusted side of a function test: load the candidate's module and answer calls.

Runs inside the sandbox as a child of the referee, in a fresh interpreter (so it holds none of
the referee's memory), with two pipes as its only link: requests on fd 0, replies on fd 1.
Nothing here is trusted: the candidate may rewrite this loop, forge replies or exit at will.
The referee only ever receives values, decodes them strictly and judges them itself; this
process never sees a test, an expected value or the referee's report channel.
"""

import os

import arbiter_wire as wire

SOLUTION_FILE = "candidate.py"


def _describe(exc):
    text = str(exc)
    return f"{type(exc).__name__}: {text[:300]}" if text else type(exc).__name__


def main():
    requests = os.fdopen(os.dup(0), "rb")
    replies = os.dup(1)
    # The candidate's own prints and input() must not touch the protocol pipes.
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)

    def send(message):
        data = wire.dumps(message)
        while data:
            data = data[os.write(replies, data):]

    namespace = {"__name__": "solution", "__builtins__": __builtins__}
    try:
        with open(SOLUTION_FILE, encoding="utf-8") as f:
            code = compile(f.read(), SOLUTION_FILE, "exec")
    except SyntaxError as exc:
        send(["load_error", f"SyntaxError: {exc.msg} (line {exc.lineno})"])
        return
    try:
        exec(code, namespace)
    except BaseException as exc:  # the candidate's module failed: report it, the referee judges
        send(["load_error", _describe(exc)])
        return
    send(["ready"])
    for line in requests:
        try:
            kind, name, args, kwargs = wire.loads(line)
        except (wire.WireError, ValueError):
            kind = None
        if kind != "call":
            send(["protocol_error", "bad request"])
            return
        function = namespace.get(name)
        if not callable(function):
            send(["missing", name])
            continue
        try:
            value = function(*args, **kwargs)
        except BaseException as exc:  # an exception is a behaviour of the candidate, sent as data
            send(["raise", type(exc).__name__, str(exc)[:300]])
            continue
        try:
            encoded = wire.encode(value)
        except (wire.WireError, RecursionError) as exc:
            send(["unsendable", str(exc)[:300]])
            continue
        send(["return", encoded])


if __name__ == "__main__":
    main()
