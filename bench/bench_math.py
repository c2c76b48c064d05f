"""Benchmark: the math verifier against plain Math-Verify, in the same run.

1. Distinct cases, whole process. Every conformance row (Math-Verify's own test table) and every
   golden-table row, as an R1 completion `<think>…</think><answer>PREDICTION</answer>` with its
   gold, scored once each by `MathVerifier.score` with the default config but one worker
   (extraction and the exact fast path in the caller, the comparison in a warm worker behind one
   IPC round trip, the 5% audit included) and by plain `verify(parse(gold), parse(completion))`,
   as a user calls it. Each side runs in a fresh interpreter per round (no parse or sympy cache
   left by an earlier pass over the same cases helps either), the two alternating, three rounds.
   Prints the total time of each and the ratio, split by source (Math-Verify's table, our golden
   tables) and for the cases that are plain numbers; target: median ratio at most 1.0x.
2. A GRPO group: 16 completions of one prompt with 4 distinct answers (written 4 ways each:
   `\\boxed{}`, a lead-in, bold, a `$…$`). Prints how many verifications the verifier ran (target:
   4, from its per-(gold, extracted answer) memo) and the time against 16 plain calls.

Run: .venv/bin/python bench/bench_math.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from math_verify import parse, verify

from rewards.math import MathConfig, MathVerifier
from rewards.math.numbers import exact_numbers_equal
from rewards.types import Sample

_ROOT = Path(__file__).resolve().parents[1]
_DEFAULT_CASES_DIR = _ROOT / "tests" / "conformance"
CASES = Path(os.environ.get("ARBITER_CONFORMANCE_DIR", _DEFAULT_CASES_DIR)) / "math_verify_cases.jsonl"
GOLDEN = _ROOT / "tests" / "golden"
THINK = "<think>\nLet me work it out.\n</think>\n"
WARMUP = [("\\frac{1}{2}", "0.5"), ("x = 3", "3"), ("(0, 1]", "0 < x \\le 1"), ("\\sqrt{2}", "2^{1/2}")]


def r1_sample(n: int, prediction: str, gold: str) -> Sample:
    return Sample(id=str(n), task="math", completion=f"{THINK}<answer>{prediction}</answer>", answer=gold)


def distinct_cases() -> list[Sample]:
    """Conformance rows (ids "mv-…") and golden rows ("golden-…") as R1 completions, each
    (gold, completion) once."""
    if not CASES.exists():
        sys.exit(f"conformance table not found at {CASES}; set ARBITER_CONFORMANCE_DIR")
    pairs = [(r["prediction"], r["gold"]) for r in map(json.loads, CASES.read_text().splitlines())]
    samples = [r1_sample(n, prediction, gold) for n, (prediction, gold) in enumerate(pairs)]
    samples = [Sample(id=f"mv-{s.id}", task="math", completion=s.completion, answer=s.answer) for s in samples]
    for path in sorted(GOLDEN.glob("math_*.jsonl")):
        for row in map(json.loads, path.read_text().splitlines()):
            completion = row.get("completion") or f"{THINK}<answer>{row['prediction']}</answer>"
            samples.append(Sample(id=f"golden-{len(samples)}", task="math", completion=completion,
                                  answer=row["gold"]))
    unique = {(s.answer, s.completion): s for s in samples}
    return list(unique.values())


def plain(sample: Sample) -> bool:
    # Math-Verify as a user calls it on the main thread, its own signal timeouts included.
    return verify(parse(sample.answer), parse(sample.completion))


def timed(fn, *args) -> float:  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    fn(*args)
    return time.perf_counter() - start


def loop(side: str, cases: list[Sample]) -> list[float]:
    """Seconds per case for one side, in this (fresh) process: warmed on inputs that are not cases."""
    if side == "plain":
        score = plain
    else:
        verifier = MathVerifier(MathConfig(workers=1))  # the default config, one worker: like for like
        verifier.warm()
        score = verifier.score
    for n, (gold, prediction) in enumerate(WARMUP):
        score(r1_sample(-n - 1, prediction, gold))
    try:
        return [timed(score, sample) for sample in cases]
    finally:
        if side == "arbiter":
            verifier.close()


def loop_in_fresh_process(side: str, cases_file: str) -> list[float]:
    done = subprocess.run([sys.executable, __file__, "--loop", side, cases_file], check=True,
                          capture_output=True, text=True)
    return json.loads(done.stdout)


def whole_process(cases: list[Sample], rounds: int) -> None:
    """Each side scores every case once in a fresh interpreter (so no cache left by an earlier pass
    helps either), the two alternating, `rounds` times."""
    with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False) as f:
        f.writelines(json.dumps({"id": s.id, "gold": s.answer, "completion": s.completion}) + "\n" for s in cases)
    try:
        runs = [(loop_in_fresh_process("plain", f.name), loop_in_fresh_process("arbiter", f.name))
                for _ in range(rounds)]
    finally:
        os.unlink(f.name)
    numeric = []
    verifier = MathVerifier(MathConfig(workers=1))
    for sample in cases:
        answer = verifier.cache_key(sample)
        numeric.append(answer is not None and exact_numbers_equal(sample.answer or "", answer) is not None)
    conformance = [s.id.startswith("mv-") for s in cases]
    print(f"distinct cases, whole process: {len(cases)} R1 completions, each scored once per fresh process")
    print(f"  {'round, cases':34}{'plain s':>10}{'Arbiter s':>11}{'ratio':>8}")
    for n, (plain_s, ours_s) in enumerate(runs, start=1):
        for label, keep in (("all cases", [True] * len(cases)), ("Math-Verify's table", conformance),
                            ("golden tables", [not x for x in conformance]), ("plain numbers", numeric),
                            ("the rest", [not x for x in numeric])):
            p = sum(t for t, k in zip(plain_s, keep, strict=True) if k)
            o = sum(t for t, k in zip(ours_s, keep, strict=True) if k)
            print(f"  {f'{n}, {label} ({sum(keep)})':34}{p:10.3f}{o:11.3f}{o / p:7.2f}x")
    ratios = sorted(sum(o) / sum(p) for p, o in runs)
    print(f"  all cases, median over {rounds} rounds: {ratios[len(ratios) // 2]:.2f}x (target <= 1.0x)")


def grpo_group() -> None:
    gold = "\\frac{3}{4}"
    values = ["\\frac{3}{4}", "0.75", "\\frac{1}{2}", "\\sqrt{3}/2"]
    forms = ["\\boxed{{{}}}", "The final answer is ${}$.", "**{}**", "${}$"]
    group = [r1_sample(n, form.format(value), gold) for n, (form, value) in
             enumerate((f, v) for f in forms for v in values)]
    verifier = MathVerifier(MathConfig(workers=1))
    verifier.warm()
    try:
        verifier.score(r1_sample(-1, "0.5", "\\frac{1}{2}"))
        before = verifier.verifications
        ours = sum(timed(verifier.score, s) for s in group)
        verifications = verifier.verifications - before
    finally:
        verifier.close()
    baseline = sum(timed(plain, s) for s in group)
    print(f"GRPO group: {len(group)} completions, {len(values)} distinct answers")
    print(f"  verifications run: {verifications} (target {len(values)}: one per (gold, extracted answer))")
    print(f"  plain Math-Verify, 16 calls: {baseline * 1e3:8.1f} ms; Arbiter: {ours * 1e3:8.1f} ms "
          f"({ours / baseline:.2f}x)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the conformance rows only, one round")
    parser.add_argument("--rounds", type=int, default=3, help="fresh-process rounds per side (default 3)")
    parser.add_argument("--loop", nargs=2, metavar=("SIDE", "JSONL"), help=argparse.SUPPRESS)  # a round's child
    args = parser.parse_args()
    logging.getLogger("math_verify").setLevel(logging.ERROR)
    if args.loop:
        side, path = args.loop
        rows = [json.loads(line) for line in Path(path).read_text().splitlines()]
        cases = [Sample(id=r["id"], task="math", completion=r["completion"], answer=r["gold"]) for r in rows]
        print(json.dumps(loop(side, cases)))
        return 0
    cases = distinct_cases()
    if args.quick:
        cases = cases[:270]
    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} (others' work skews timings)")
    whole_process(cases, 1 if args.quick else args.rounds)
    grpo_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
