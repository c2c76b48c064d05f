"""The function-test harness that runs inside the sandbox, as the modules named here.

MODULES maps each module's in-sandbox name to its source, in import order (a module imports
only those before it). The graders ship them as files with every run; a warm jail's launcher
also imports them once when it starts (sandbox/_zygote.py), so that a run forked from it finds
them already imported.
"""

from importlib import resources


def _source(name: str) -> str:
    return resources.files(__name__).joinpath(name).read_text(encoding="utf-8")


MODULES: dict[str, str] = {
    "arbiter_wire": _source("wire.py"),
    "arbiter_contestant": _source("contestant.py"),
    "arbiter_referee": _source("referee.py"),
}
