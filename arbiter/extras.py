"""Which optional layer (`pip install 'arbiter[EXTRA]'`) a command needs, and whether it is installed.

The answer is read from the installed distribution's own metadata (the `Requires-Dist` lines that
pyproject.toml's extras become), so the list of what each extra brings lives in one place. A
requirement counts as present when a distribution of that name is installed; versions are pip's
business. An extra that names another extra of arbiter (`arbiter[services]`) includes it.
"""

from __future__ import annotations

import re
from importlib import metadata

DISTRIBUTION = "arbiter"
# Exit status of a command whose extra is not installed (1 is a run that failed, 2 a usage error).
MISSING_EXTRA_STATUS = 3
# `name[extras] specifiers; extra == "x"`, as importlib.metadata.requires() gives them (`packaging`
# would parse these too, but it is no dependency of the core).
_REQUIREMENT = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[([^\]]*)\])?[^;]*(?:;(.*))?$")
_EXTRA_MARKER = re.compile(r"""\bextra\s*==\s*["']([^"']+)["']""")


def _normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirements_of(extra: str, requires: list[str]) -> list[str]:
    """The distribution names `extra` adds (nested arbiter extras expanded), in declaration order."""
    names: list[str] = []
    pending, seen = [extra], set()
    while pending:
        current = pending.pop(0)
        if current in seen:
            continue
        seen.add(current)
        for line in requires:
            match = _REQUIREMENT.match(line)
            marker = _EXTRA_MARKER.search(match.group(3) or "") if match else None
            if match is None or marker is None or marker.group(1) != current:
                continue
            name, nested = match.group(1), match.group(2)
            if _normalized(name) == DISTRIBUTION:
                pending.extend(part.strip() for part in (nested or "").split(",") if part.strip())
            elif name not in names:
                names.append(name)
    return names


def installed_requirements() -> list[str]:
    """arbiter's `Requires-Dist` lines; none when arbiter itself is not installed (a bare source tree:
    nothing to compare against, so imports decide)."""
    try:
        return metadata.requires(DISTRIBUTION) or []
    except metadata.PackageNotFoundError:
        return []


def missing_for(extra: str, requires: list[str] | None = None) -> list[str]:
    """The distributions `extra` adds (by `requires`, default: the installed metadata) that are not installed."""
    requires = installed_requirements() if requires is None else requires
    missing = []
    for name in requirements_of(extra, requires):
        try:
            metadata.distribution(name)
        except metadata.PackageNotFoundError:
            missing.append(name)
    return missing


def missing_extra_message(what: str, extra: str, requires: list[str] | None = None) -> str | None:
    """A one-line instruction when `what` (a command) cannot run without `extra`, else None."""
    missing = missing_for(extra, requires)
    if not missing:
        return None
    return f"{what} needs the {extra!r} extra (not installed: {', '.join(missing)}): pip install 'arbiter[{extra}]'"
