"""Prompt and SFT files: JSONL or Parquet in, validated plain dataclasses out.

A prompt file is JSONL (.jsonl) or Parquet (.parquet), read locally with pyarrow; `DataConfig`
names the fields that hold the prompt, the answer, the id and the task (default: the columns `id`,
`prompt`, `answer`, `task`), and other columns are ignored, so a GSM8K or MATH file is read as it
comes. An optional `metadata` object per row is carried through to the verifiers, and optional
`tests` (the code verifier's tests) too. SFT line: {"prompt": str, "completion": str}. A bad row
is an error naming the file, the row and the field; a wrong field name, the file and the fields it has.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rewards.types import Sample
from trainer.config import DataConfig


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


def _read_parquet(path: Path) -> list[dict[str, Any]]:
    import pyarrow
    import pyarrow.parquet

    try:
        rows = pyarrow.parquet.read_table(path).to_pylist()
    except (OSError, pyarrow.ArrowException) as exc:
        raise DataError(f"{path}: {exc}") from exc
    if not rows:
        raise DataError(f"{path}: no rows")
    return rows


def _read_rows(path: str | Path) -> list[tuple[str, dict[str, Any]]]:
    """(where, row) pairs: `file:line` for JSONL, `file row N` for Parquet."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        return [(f"{path}:{number}", raw) for number, raw in _read_jsonl(path)]
    if suffix == ".parquet":
        return [(f"{path} row {i}", raw) for i, raw in enumerate(_read_parquet(path))]
    raise DataError(f"{path}: unknown prompt file type {suffix or '(none)'!r}: expected .jsonl or .parquet")


def _require_str(raw: dict[str, Any], key: str, where: str, numbers: bool = False) -> str:
    value = raw.get(key)
    if numbers and isinstance(value, int | float) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value:
        raise DataError(f"{where}: field {key!r} must be a non-empty string")
    return value


_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}(?!\d))")


def gsm8k_final_answer(solution: str) -> str | None:
    """The final answer of a GSM8K solution: what follows its last `####`, without thousands separators."""
    _, sep, tail = solution.rpartition("####")
    if not sep:
        return None
    answer = _THOUSANDS.sub("", tail.strip())
    return answer or None


def load_prompts(path: str | Path, fields: DataConfig | None = None) -> list[PromptItem]:
    """Read a prompt file with the field names of `fields` (default: id, prompt, answer, task)."""
    fields = fields or DataConfig()
    rows = _read_rows(path)
    present = list(dict.fromkeys(key for _, raw in rows for key in raw))
    wanted = {"data.prompt_field": fields.prompt_field, "data.answer_field": fields.answer_field}
    if fields.id_field is not None:
        wanted["data.id_field"] = fields.id_field
    if fields.task is None:
        wanted["data.task_field"] = fields.task_field
    for key, name in wanted.items():
        if name not in present:
            raise DataError(f"{key}: {path} has no field {name!r} (its fields: {', '.join(map(str, present))})")
    id_field = fields.id_field if fields.id_field is not None else ("id" if "id" in present else None)
    items = []
    for number, (where, raw) in enumerate(rows):
        metadata = raw.get("metadata") or {}
        if not isinstance(metadata, dict):
            raise DataError(f"{where}: field 'metadata' must be an object")
        answer = _require_str(raw, fields.answer_field, where, numbers=True)
        if fields.answer_format == "gsm8k":
            final = gsm8k_final_answer(answer)
            if final is None:
                raise DataError(f"{where}: data.answer_format gsm8k: field {fields.answer_field!r} has no "
                                f"final '#### <answer>'")
            answer = final
        items.append(PromptItem(
            id=str(number) if id_field is None else _require_str(raw, id_field, where, numbers=True),
            prompt=_require_str(raw, fields.prompt_field, where),
            answer=answer,
            task=fields.task if fields.task is not None else _require_str(raw, fields.task_field, where),
            metadata=metadata,
            tests=raw.get("tests"),
        ))
    seen: set[str] = set()
    for item in items:
        if item.id in seen:
            raise DataError(f"{path}: duplicate prompt id {item.id!r}")
        seen.add(item.id)
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
