"""Real verifier plug-ins for the gRPC tests, loaded by worker processes as "grpc_plugins:Factory".

They exercise what built-ins rarely do on demand: a slow verifier (deadlines,
worker timeouts, back-pressure), one that kills its own process, and one that
declares a cache key (the verdict cache).
"""

from __future__ import annotations

import os
import re
import time

from rewards.pool import Step
from rewards.types import Sample, SampleError, VerifierResult

_ANSWER = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)


class SleepVerifier:
    """Sleeps metadata["sleep_s"] seconds, then calls the sample correct."""

    name, version, reference = "sleep", "1", "none"

    def score(self, sample: Sample) -> VerifierResult:
        time.sleep(float(sample.metadata.get("sleep_s", 0)))
        return VerifierResult.correct(detail="slept")


class BoundedStepVerifier:
    """Declares a 0.5 s deadline on its score(), as the math verifier declares its comparison's, and
    sleeps metadata["step_s"] seconds inside it."""

    name, version, reference = "bounded_step", "1", "none"
    deadline = Step("the step", 0.5)

    def score(self, sample: Sample) -> VerifierResult:
        time.sleep(float(sample.metadata.get("step_s", 0)))
        return VerifierResult.correct(detail="stepped")


class CrashVerifier:
    """Ends its own process abruptly when the completion says "die" (a segfault stand-in)."""

    name, version, reference = "crash", "1", "none"

    def score(self, sample: Sample) -> VerifierResult:
        if sample.completion == "die":
            os._exit(3)
        return VerifierResult.correct(detail="alive")


class ExactAnswerVerifier:
    """Correct when the <answer> text equals the gold answer; caches on the extracted answer."""

    name, version, reference = "exact", "1", "answer"

    @staticmethod
    def _extract(sample: Sample) -> str | None:
        found = _ANSWER.findall(sample.completion)
        return found[-1].strip() if found else None

    def cache_key(self, sample: Sample) -> str | None:
        return self._extract(sample)

    def score(self, sample: Sample) -> VerifierResult:
        if not sample.answer:
            raise SampleError("answer", "exact needs a gold answer")
        answer = self._extract(sample)
        if answer is None:
            return VerifierResult.no_answer()
        if answer == sample.answer.strip():
            return VerifierResult.correct(answer=answer)
        return VerifierResult.incorrect(answer=answer)


class SlowStartVerifier:
    """Takes a while to warm up, like a verifier that loads a big library."""

    name, version, reference = "slow_start", "1", "none"

    def warm(self) -> None:
        time.sleep(2.0)

    def score(self, sample: Sample) -> VerifierResult:
        return VerifierResult.correct()


PLUGINS = {
    "sleep": "grpc_plugins:SleepVerifier",
    "crash": "grpc_plugins:CrashVerifier",
    "exact": "grpc_plugins:ExactAnswerVerifier",
}
ROUTING = {
    "tasks": {
        "sleep": {"sleep": 1.0},
        "crash": {"crash": 1.0},
        "exact": {"exact": 1.0, "format": 0.5},
        "format": {"format": 1.0},
    }
}
