"""The verdict cache: content-addressed keys, LRU bounds, and hit/miss accounting."""

from __future__ import annotations

from rewards.types import Sample, VerifierResult
from services.cache import VerdictCache, entry_key, reference_digest

CORRECT = VerifierResult.correct(answer="4")


def sample(**fields) -> Sample:
    values = {"id": "s", "task": "math", "completion": "<think>a</think><answer>4</answer>", "answer": "4"}
    values.update(fields)
    return Sample(**values)


class Extracting:
    name, version, reference = "exact", "1", "answer"

    def cache_key(self, s: Sample) -> str | None:
        return s.completion.rsplit("<answer>", 1)[-1] if "<answer>" in s.completion else None


class Plain:
    name, version, reference = "plain", "1", "answer"


def test_reference_digest_ignores_id_and_completion_but_not_the_reference():
    base = reference_digest("exact", "1", "answer", sample())
    assert reference_digest("exact", "1", "answer", sample(id="other", completion="x")) == base
    assert reference_digest("exact", "1", "answer", sample(answer="5")) != base
    assert reference_digest("exact", "2", "answer", sample()) != base  # a new version never reuses verdicts
    assert reference_digest("other", "1", "answer", sample()) != base


def test_tests_are_hashed_in_canonical_form():
    a = sample(tests={"kind": "assert", "test": ["x"]}, answer=None)
    b = sample(tests={"test": ["x"], "kind": "assert"}, answer=None)
    assert reference_digest("code", "1", "tests", a) == reference_digest("code", "1", "tests", b)


def test_reference_free_verifiers_are_never_cached():
    assert reference_digest("format", "1", "none", sample()) is None


def test_entry_key_uses_the_verifiers_extraction_when_it_has_one():
    long = sample(completion="<think>long reasoning</think><answer>4</answer>")
    short = sample(completion="<think>x</think><answer>4</answer>")
    assert entry_key(Extracting(), long) == entry_key(Extracting(), short)
    assert entry_key(Extracting(), sample(completion="no answer")) is None


def test_entry_key_without_extraction_is_the_exact_completion_and_prompt():
    assert entry_key(Plain(), sample(completion="a")) != entry_key(Plain(), sample(completion="b"))
    assert entry_key(Plain(), sample(prompt="p")) != entry_key(Plain(), sample(prompt="q"))
    assert entry_key(Plain(), sample(id="1")) == entry_key(Plain(), sample(id="2"))


def test_put_then_group_returns_the_entry():
    cache = VerdictCache(capacity=10)
    cache.put("g", "k", CORRECT)
    assert cache.group("g") == {"k": CORRECT}
    assert cache.group("missing") == {}


def test_faults_are_never_cached():
    cache = VerdictCache(capacity=10)
    cache.put("g", "t", VerifierResult.timeout("slow"))
    cache.put("g", "e", VerifierResult.error("bug"))
    assert cache.group("g") == {}


def test_least_recently_used_group_is_evicted_first():
    cache = VerdictCache(capacity=3)
    cache.put("old", "a", CORRECT)
    cache.put("new", "b", CORRECT)
    cache.put("new", "c", CORRECT)
    cache.group("old")  # touched: now "new" is the least recently used group
    cache.put("newest", "d", CORRECT)
    assert cache.stats()["entries"] == 3
    assert cache.group("old") == {"a": CORRECT}
    assert cache.group("new") == {"c": CORRECT}


def test_a_group_keeps_only_its_newest_entries():
    cache = VerdictCache(capacity=100, max_group_entries=2)
    for key in "abc":
        cache.put("g", key, CORRECT)
    assert set(cache.group("g")) == {"b", "c"}
    assert cache.stats()["entries"] == 2


def test_zero_capacity_disables_the_cache():
    cache = VerdictCache(capacity=0)
    cache.put("g", "k", CORRECT)
    assert not cache.enabled
    assert cache.group("g") == {}


def test_stats_count_hits_and_misses_per_verifier():
    cache = VerdictCache(capacity=10)
    cache.record("exact", hit=True)
    cache.record("exact", hit=False)
    cache.record("code", hit=False)
    assert cache.stats("exact") == {"hits": 1, "misses": 1, "entries": 0, "capacity": 10}
    assert cache.stats()["misses"] == 2
