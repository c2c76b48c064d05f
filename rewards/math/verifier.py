"""MathVerifier: extract the answer here, compare it with the gold where a kill can stop it.

The comparison (parsing and sympy) can run away on hostile input, so it runs where a
kill can stop it: this verifier's own pool of warm worker processes (rewards.pool), each
comparison a job with `timeout_s` as its deadline. With `workers=0` it has no pool and
compares in the calling process, for a host that is itself a killable worker and holds
the verifier to the `deadline` it declares (the services' scoring workers do: a second
process hop per sample would only add IPC and idle processes). The choice is data, made
once when the verifier is built.

What never needs a worker: two plain numbers (integers, decimals, fractions) are compared
exactly in the caller (rewards.math.numbers), and a (gold, extracted answer) pair already
judged is answered from a small memo, so a GRPO group of 16 completions with 4 distinct
answers costs 4 verifications. A share `audit_fraction` of the pairs also gets a second
opinion from plain Math-Verify, in its own bounded call, recorded as `VerifierResult.audit`:
it never changes the verdict, it tells the user how far to trust it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import resource
import threading
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from rewards.math.extract import extract_answer, strip_presentation
from rewards.math.numbers import exact_numbers_equal
from rewards.math.protocol import CORRECT, GOLD_UNPARSABLE, CompareOptions
from rewards.pool import Step, WorkerFault, WorkerPool, WorkerPoolConfig, WorkerTimeout
from rewards.types import Sample, SampleError, Verdict, VerifierResult, describe_exception


@dataclass(frozen=True)
class MathConfig:
    """Settings of the math verifier. Loaded from YAML/JSON by the strict loader (arbiter.config.from_dict),
    which rejects unknown keys and wrong types; a bad value is a ValueError from __post_init__."""

    timeout_s: float = 5.0
    """Hard bound on one comparison (parse + verify); past it the worker is killed: TIMEOUT.
    With workers=0, the deadline the verifier declares to its host for one sample's comparisons
    (the audit's included)."""
    workers: int = 2
    """Worker processes; as many comparisons run at once (one per calling thread). 0: no pool,
    compare in the calling process, which must be a killable worker whose host enforces
    `MathVerifier.deadline` (the services' scoring workers)."""
    float_rounding: int = 6
    """Decimal places to which an answer containing a float is compared (Math-Verify's rule)."""
    numeric_precision: int = 15
    """Digits of Math-Verify's numeric evaluation of exact expressions."""
    exact_rel_tol: float = 1e-12
    """Exact (float-free) numbers must agree to this relative tolerance, so 1/2004! != 1/2006!."""
    strict: bool = True
    """Variable names matter (x = 1 is not y = 1), as in Math-Verify's strict mode."""
    memory_limit_mib: int | None = 2048
    """Address-space limit per worker (about 65 MiB in use when idle), so a runaway
    expansion fails inside the worker (ERROR) instead of swapping the host. With workers=0,
    the growth of the host worker's address space allowed during one comparison."""
    audit_fraction: float = 0.05
    """Share of (gold, answer) pairs also judged by plain Math-Verify (a second, independent
    opinion, in its own call bounded by `timeout_s`); chosen by a hash of the pair, so a pair is
    audited every time or never. 0 turns audits off, 1 audits every sample."""
    memo_entries: int = 4096
    """Judged (gold, extracted answer) pairs remembered, least recently used dropped: repeats
    within a GRPO group cost nothing. Faults are never remembered."""

    def __post_init__(self) -> None:
        if not self.timeout_s > 0:
            raise ValueError(f"timeout_s must be positive, got {self.timeout_s!r}")
        if self.workers < 0:
            raise ValueError(f"workers must be >= 0, got {self.workers!r}")
        if not 0 <= self.float_rounding <= 30:
            raise ValueError(f"float_rounding must be within 0..30, got {self.float_rounding!r}")
        if not 0 <= self.exact_rel_tol < 1:
            raise ValueError(f"exact_rel_tol must be within [0, 1), got {self.exact_rel_tol!r}")
        if not 0 <= self.audit_fraction <= 1:
            raise ValueError(f"audit_fraction must be within [0, 1], got {self.audit_fraction!r}")
        if self.memo_entries < 0:
            raise ValueError(f"memo_entries must be >= 0, got {self.memo_entries!r}")

    def pool_config(self) -> WorkerPoolConfig:
        return WorkerPoolConfig(
            handler="rewards.math._worker:handle",
            workers=self.workers,
            setup="rewards.math._worker:warmup",
            memory_limit_mib=self.memory_limit_mib,
        )

    def compare_options(self, targets: tuple[str, ...] | None = None) -> CompareOptions:
        return CompareOptions(
            float_rounding=self.float_rounding,
            numeric_precision=self.numeric_precision,
            exact_rel_tol=self.exact_rel_tol,
            strict=self.strict,
            targets=targets,
        )


@contextlib.contextmanager
def _growth_limit(mib: int | None) -> Iterator[None]:
    """Let this process's address space grow by at most `mib` during the block (soft RLIMIT_AS),
    so an inline runaway expansion fails with MemoryError (ERROR) as it would in a pool worker."""
    if mib is None:
        yield
        return
    with open("/proc/self/statm") as f:
        in_use = int(f.read().split()[0]) * resource.getpagesize()
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    limit = in_use + mib * 1024 * 1024
    for existing in (soft, hard):  # never looser than what the host already set
        if existing != resource.RLIM_INFINITY:
            limit = min(limit, existing)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


class MathVerifier:
    """Scores a completion CORRECT when its final answer equals the sample's gold answer."""

    name = "math"
    version = "1.0.0"
    reference = "answer"

    def __init__(self, config: MathConfig | None = None) -> None:
        self.config = config or MathConfig()
        self._options = self.config.compare_options()
        self._pool: WorkerPool | None = None  # started on first use; never pickled
        self._pool_lock = threading.Lock()
        self._memo: OrderedDict[tuple[str, str], VerifierResult] = OrderedDict()
        self._memo_lock = threading.Lock()
        self.verifications = 0
        """Comparisons actually run (fast path or worker), not answered from the memo."""

    def score(self, sample: Sample) -> VerifierResult:
        gold = sample.answer
        if gold is not None and not isinstance(gold, str):
            raise SampleError("answer", f"must be a string, got {type(gold).__name__}")
        if not isinstance(sample.completion, str):
            raise SampleError("completion", f"must be a string, got {type(sample.completion).__name__}")
        if gold is None or not gold.strip():
            return VerifierResult.not_applicable("sample has no gold answer")
        answer = extract_answer(sample.completion)
        if answer is None:
            return VerifierResult.no_answer("no <answer> block and no \\boxed{} after the reasoning")
        key = (gold, answer)
        with self._memo_lock:
            known = self._memo.get(key)
            if known is not None:
                self._memo.move_to_end(key)
                return known
        result = self._verify(gold, answer)
        if self.config.memo_entries and not result.verdict.is_fault:
            with self._memo_lock:
                self._memo[key] = result
                while len(self._memo) > self.config.memo_entries:
                    self._memo.popitem(last=False)
        return result

    def _verify(self, gold: str, answer: str) -> VerifierResult:
        """One verification: the exact fast path or a worker's comparison, then the audit if due."""
        with self._memo_lock:
            self.verifications += 1
        exact = exact_numbers_equal(strip_presentation(gold), answer)
        if exact is not None:
            shown = f"{answer[:120]} {'==' if exact else '!='} gold {gold[:120]}"
            result = VerifierResult.correct(detail=shown, answer=answer) if exact else VerifierResult.incorrect(
                detail=shown, answer=answer
            )
        else:
            result = self._judge(gold, answer, self._options)
        if self._audited(gold, answer):
            second = self._judge(gold, answer, dataclasses.replace(self._options, plain=True))
            result = dataclasses.replace(result, audit=second.verdict)
        return result

    def _audited(self, gold: str, answer: str) -> bool:
        fraction = self.config.audit_fraction
        if fraction <= 0:
            return False
        digest = hashlib.blake2b(f"{gold}\0{answer}".encode(), digest_size=8).digest()
        return int.from_bytes(digest) < fraction * 2**64

    def cache_key(self, sample: Sample) -> str | None:
        """The extracted answer: GRPO's many completions per prompt often reduce to a few answers."""
        return extract_answer(sample.completion) if isinstance(sample.completion, str) else None

    def compare(
        self, gold: str, prediction: str, targets: tuple[str, ...] | None = None, **overrides: Any
    ) -> VerifierResult:
        """Compare two texts directly.

        Without `targets`, `prediction` is an already extracted answer, exactly as in `score`.
        With `targets` (Math-Verify extraction target names such as ("latex_boxed0", "expr")),
        both texts are raw model output parsed Math-Verify's way. `overrides` replace
        CompareOptions fields for this call (float_rounding, strict, allow_set_relation_comp).
        """
        options = dataclasses.replace(self.config.compare_options(targets), **overrides)
        return self._judge(gold, prediction, options)

    @property
    def deadline(self) -> Step | None:
        """What a host that runs this verifier inline must hold one score() call to; None when the
        verifier's own pool enforces its bounds."""
        return Step("math comparison", self.config.timeout_s) if self.config.workers == 0 else None

    def warm(self) -> None:
        """Start the workers now and wait until each has warmed up (workers=0: warm this process)."""
        if self.config.workers == 0:
            from rewards.math._worker import warm_parsers  # sympy only where comparisons run

            warm_parsers()  # fixed inputs; the host's start-up deadline covers them
            return
        self._workers().start(wait=True)

    def close(self) -> None:
        """Kill this verifier's workers; a later call starts fresh ones."""
        with self._pool_lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()

    def worker_pids(self) -> list[int]:
        """Process ids of the live workers (empty before first use)."""
        pool = self._pool
        return pool.pids() if pool is not None else []

    def _workers(self) -> WorkerPool:
        with self._pool_lock:
            if self._pool is None:
                self._pool = WorkerPool(self.config.pool_config())
            return self._pool

    def _judge(self, gold: str, answer: str, options: CompareOptions) -> VerifierResult:
        if self.config.workers == 0:
            return self._judge_inline(gold, answer, options)
        pool = self._workers()
        try:
            outcome, gold_shown, answer_shown = pool.call((gold, answer, options), self.config.timeout_s)
        except WorkerTimeout as exc:
            return VerifierResult(Verdict.TIMEOUT, None, f"comparison timed out: {exc}", answer)
        except WorkerFault as exc:  # a crash, a handler exception, or a closed pool
            return VerifierResult(Verdict.ERROR, None, f"{type(exc).__name__}: {exc}", answer)
        return self._verdict(outcome, gold_shown, answer_shown, answer)

    def _judge_inline(self, gold: str, answer: str, options: CompareOptions) -> VerifierResult:
        """Compare in this process; past `deadline` the host kills it and answers TIMEOUT."""
        from rewards.math._worker import handle, unlimited_int_digits  # sympy only where comparisons run

        with _growth_limit(self.config.memory_limit_mib), unlimited_int_digits():
            try:
                outcome, gold_shown, answer_shown = handle((gold, answer, options))
            except Exception as exc:  # the same ERROR verdict the pool gives a handler that raised
                return VerifierResult(Verdict.ERROR, None, f"WorkerRaised: {describe_exception(exc)}", answer)
        return self._verdict(outcome, gold_shown, answer_shown, answer)

    @staticmethod
    def _verdict(outcome: str, gold_shown: str, answer_shown: str, answer: str) -> VerifierResult:
        if outcome == GOLD_UNPARSABLE:
            return VerifierResult.not_applicable(f"gold answer could not be parsed: {gold_shown}", answer=answer)
        if outcome == CORRECT:
            return VerifierResult.correct(detail=f"{answer_shown} == gold {gold_shown}", answer=answer)
        return VerifierResult.incorrect(detail=f"{answer_shown} != gold {gold_shown}", answer=answer)

    def __getstate__(self) -> dict[str, Any]:
        return {"config": self.config}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["config"])

    def __repr__(self) -> str:
        return f"MathVerifier({self.config!r})"
