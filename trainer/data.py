"""Prompt and SFT files: JSONL in, validated plain dataclasses out.

Prompt line: {"id": str, "prompt": str, "answer": str, "task": str}; an optional "metadata"
object is carried through to the verifiers, and optional "tests" (the code verifier's tests) too.
SFT line: {"prompt": str, "completion": str}.
A bad line is an error naming the file, the line number and the field.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rewards.types import Sample


class DataError(ValueError):
    pass


@dataclass(frozen=True)
class PromptItem:
    id: str
    prompt: str
    answer: str
    task: str
    metadata: dict[str, Any] = field(default_factory=dict)
    tests: Any = None  # for code tasks: the code verifier's tests (rewards/code.py)

    def to_sample(self, sample_id: str, completion: str) -> Sample:
        """A completion of this prompt, as the verifiers take it."""
        return Sample(id=sample_id, task=self.task, completion=completion, prompt=self.prompt, answer=self.answer,
                      tests=self.tests, metadata=dict(self.metadata))


def _read_jsonl(path: str | Path) -> list[tuple[int, dict[str, Any]]]:
    path = Path(path)
    try:
        lines = path.read_text().splitlines()
    except OSError as exc:
        raise DataError(f"{path}: {exc.strerror or exc}") from exc
    out = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            raw = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}:{number}: not JSON: {exc.msg}") from exc
        if not isinstance(raw, dict):
            raise DataError(f"{path}:{number}: expected a JSON object")
        out.append((number, raw))
    if not out:
        raise DataError(f"{path}: no lines")
    return out


def _require_str(raw: dict[str, Any], key: str, where: str) -> str:
    value = raw.get(key)
    if isinstance(value, int) and not isinstance(value, bool) and key in ("id", "answer"):
        value = str(value)
    if not isinstance(value, str) or not value:
        raise DataError(f"{where}: field {key!r} must be a non-empty string")
    return value


def load_prompts(path: str | Path) -> list[PromptItem]:
    items = []
    for number, raw in _read_jsonl(path):
        where = f"{path}:{number}"
        unknown = set(raw) - {"id", "prompt", "answer", "task", "metadata", "tests"}
        if unknown:
            raise DataError(f"{where}: unknown field {sorted(unknown)[0]!r}")
        metadata = raw.get("metadata") or {}
        if not isinstance(metadata, dict):
            raise DataError(f"{where}: field 'metadata' must be an object")
        items.append(PromptItem(*(_require_str(raw, k, where) for k in ("id", "prompt", "answer", "task")), metadata,
                                raw.get("tests")))
    ids = [p.id for p in items]
    if len(set(ids)) != len(ids):
        raise DataError(f"{path}: duplicate prompt ids")
    return items


def load_sft(path: str | Path) -> list[dict[str, str]]:
    out = []
    for number, raw in _read_jsonl(path):
        where = f"{path}:{number}"
        out.append({"prompt": _require_str(raw, "prompt", where), "completion": _require_str(raw, "completion", where)})
    return out


def write_jsonl(path: str | Path, rows: list[dict[str, Any]]) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")
