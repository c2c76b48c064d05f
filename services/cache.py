"""A content-addressed verdict cache: GRPO's many completions per prompt often reduce to one answer.

Key = (verifier name, version, reference digest, entry key):
- the reference digest hashes what the verifier judges against: answer, tests
  (canonical JSON, so key order does not matter), language, limits and metadata;
- the entry key is what the verifier's judgement depends on in the completion.
  A verifier may say so itself with an optional ``cache_key(sample) -> str | None``
  method (a cheap extraction such as the final answer or the normalised program;
  None = do not cache this sample); otherwise the key is the whole completion and
  prompt, so only exact duplicates hit, which is always safe.

Extraction is reward code, so it runs in the worker process, not here. The
server keeps the cache and, with each job, ships the entries already known for
that (verifier, version, reference digest) group — the same prompt's earlier
completions; the worker looks its entry key up there (and in its own small LRU
of what it scored itself, which catches completions of one prompt that arrive in
the same batch, before any of them reached this cache), scores only on a miss
and sends back new entries. Entries are grouped per prompt and evicted least
recently used by group, since one prompt's completions arrive together.

Verifiers with reference "none" (format, length, ...) are cheap string checks and
are never cached; faulted results (TIMEOUT, ERROR) are never cached either.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict
from typing import Any

from rewards.types import Sample, VerifierResult


def _digest(material: Any) -> str:
    text = json.dumps(material, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=repr)
    return hashlib.sha256(text.encode()).hexdigest()


def reference_digest(name: str, version: str, reference: str, sample: Sample) -> str | None:
    """The group key of a sample for one verifier; None when that verifier is not cached."""
    if reference == "none":
        return None
    return _digest({
        "verifier": [name, version, reference],
        "answer": sample.answer,
        "tests": sample.tests,
        "language": sample.language,
        "limits": sample.limits,
        "metadata": sample.metadata,
    })


def entry_key(verifier: object, sample: Sample) -> str | None:
    """The completion's part of the key (runs the verifier's own extraction: call it in a worker)."""
    hook = getattr(verifier, "cache_key", None)
    if hook is not None:
        key = hook(sample)
        return None if key is None else _digest(["hook", key])
    return _digest(["exact", sample.prompt, sample.completion])


class VerdictCache:
    """Bounded LRU of verifier results, grouped by reference digest; thread-safe."""

    def __init__(self, capacity: int, max_group_entries: int = 512) -> None:
        self.capacity = capacity
        # Entries shipped to a worker with each job; a bigger group keeps only its newest.
        self.max_group_entries = max_group_entries
        self._groups: OrderedDict[str, OrderedDict[str, VerifierResult]] = OrderedDict()
        self._entries = 0
        self._lock = threading.Lock()
        self._hits: dict[str, int] = {}
        self._misses: dict[str, int] = {}

    @property
    def enabled(self) -> bool:
        return self.capacity > 0

    def group(self, digest: str) -> dict[str, VerifierResult]:
        """A copy of the known entries for one group, to ship with a job."""
        with self._lock:
            entries = self._groups.get(digest)
            if entries is None:
                return {}
            self._groups.move_to_end(digest)
            return dict(entries)

    def put(self, digest: str, key: str, result: VerifierResult) -> None:
        if not self.enabled or result.verdict.is_fault:
            return
        with self._lock:
            entries = self._groups.setdefault(digest, OrderedDict())
            self._groups.move_to_end(digest)
            if key not in entries:
                self._entries += 1
            entries[key] = result
            entries.move_to_end(key)
            while len(entries) > self.max_group_entries:
                entries.popitem(last=False)
                self._entries -= 1
            while self._entries > self.capacity:
                oldest_digest, oldest = next(iter(self._groups.items()))
                oldest.popitem(last=False)
                self._entries -= 1
                if not oldest:
                    del self._groups[oldest_digest]

    def record(self, verifier: str, hit: bool) -> None:
        with self._lock:
            counts = self._hits if hit else self._misses
            counts[verifier] = counts.get(verifier, 0) + 1

    def stats(self, verifier: str | None = None) -> dict[str, int]:
        """hits, misses, entries, capacity: overall, or one verifier's lookups."""
        with self._lock:
            if verifier is None:
                hits, misses = sum(self._hits.values()), sum(self._misses.values())
            else:
                hits, misses = self._hits.get(verifier, 0), self._misses.get(verifier, 0)
            return {"hits": hits, "misses": misses, "entries": self._entries, "capacity": self.capacity}
