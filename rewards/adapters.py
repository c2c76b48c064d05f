"""Arbiter verifiers as reward functions for TRL and verl, used in-process as they are.

TRL (``GRPOTrainer(reward_funcs=[...])``)::

    from rewards.adapters import trl_reward_func
    trainer = GRPOTrainer(model, reward_funcs=[trl_reward_func("math"), trl_reward_func("format")],
                          args=GRPOConfig(reward_weights=[1.0, 0.5]), train_dataset=ds)  # ds has "answer"

The reward function has TRL's signature ``(prompts, completions, **kwargs) -> list[float | None]``.
Completions may be plain strings or conversational message lists. The reference comes from the
dataset columns TRL passes as keyword lists: the first of ``answer``, ``solution``,
``ground_truth`` for an answer, ``tests`` for tests, and ``language``, ``metadata`` (a dict, e.g.
``{"correct": true}`` or ``{"cot_language": "fr"}``) and ``id`` when present.
A sample that is not applicable, faulted or malformed gets None (TRL 1.16 turns it into NaN, leaves
it out of the weighted sum, and gives a completion that no reward function could score no
advantage). Per batch, ``<name>/fault_rate`` and ``<name>/not_applicable_rate`` go to TRL's
``log_metric`` hook and the verdicts to ``log_extra``, so a fault is counted, never a silent 0.

verl 0.9.1 (``reward.custom_reward_function.path`` pointing at a file with
``from rewards.adapters import compute_score``; ``reward_kwargs`` are passed through)::

    reward:
      custom_reward_function:
        path: my_reward.py           # contains: from rewards.adapters import compute_score
        name: compute_score
        reward_kwargs: {task: math}  # or {verifier: math}; else extra_info.task, else data_source;
                                     # {routing: routing.yaml} for your own routing

`compute_score` returns the dict verl's reward managers accept: ``score`` (the reward) plus
extra keys verl keeps per sample: ``acc`` (1.0 when CORRECT; verl's validation reports it),
``verdict``, ``fault`` (1.0 for TIMEOUT/ERROR, malformed ground truth included) and ``masked``
(1.0 for NOT_APPLICABLE: no reward exists, e.g. an unparseable gold answer). verl's reward tensor
needs a number, so a sample without a reward still scores ``fault_score`` (default 0.0, set it in
``reward_kwargs``); ``fault`` and ``masked`` tell it apart from a wrong answer, and
`verl_reward_metrics` turns a batch's extra keys into counts to log. Dataset values arrive as
numpy scalars and arrays as often as Python ones; both are accepted (see `plain`).
"""

from __future__ import annotations

import functools
import json
import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from rewards.compose import ScoredSample, score_sample
from rewards.registry import default_registry
from rewards.routing import DEFAULT_ROUTING, RoutingConfig
from rewards.types import Sample, SampleError, Verdict, reference_text

_log = logging.getLogger(__name__)

ANSWER_COLUMNS = ("answer", "solution", "ground_truth")
# Keyword arguments TRL adds beside the dataset columns; never sample fields.
_TRL_HOOKS = frozenset({"trainer_state", "log_extra", "log_metric", "environments", "completion_ids"})


def _text(content: Any) -> str:
    """Message content as text: a string, or the text parts of a multimodal part list."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
    return ""


def completion_text(completion: Any) -> str:
    """A TRL completion as text: the string itself, or the last assistant message's content."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, list):
        assistant = [m for m in completion if isinstance(m, dict) and m.get("role", "assistant") == "assistant"]
        if assistant:
            return _text(assistant[-1].get("content"))
    raise SampleError("completion", f"expected a string or a list of messages, got {type(completion).__name__}")


def _prompt_text(prompt: Any) -> str | None:
    if isinstance(prompt, str):
        return prompt
    if isinstance(prompt, list):
        users = [m for m in prompt if isinstance(m, dict) and m.get("role") == "user"]
        return _text(users[-1].get("content")) if users else None
    return None


def plain(value: Any) -> Any:
    """Numpy (or torch) scalars and arrays as the Python values they hold, inside dicts and lists too.

    verl hands dataset fields over inside numpy object arrays and users build TRL columns with
    pandas, so a gold of ``numpy.int64`` or a tests list stored as an array is as common as a
    Python one; the verifiers read Python values. Anything with ``tolist()`` that is not already a
    Python scalar is converted; strings (``numpy.str_`` included) become ``str``.
    """
    if isinstance(value, str):
        return str(value)
    if isinstance(value, Mapping):
        return {plain(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if not isinstance(value, (bool, int, float)) and callable(getattr(value, "tolist", None)):
        return plain(value.tolist())
    return value


class TRLRewardFunc:
    """A picklable TRL reward function over one verifier or one routed task (see trl_reward_func)."""

    def __init__(
        self,
        verifier: str | None,
        task: str | None,
        routing: RoutingConfig,
        workers: int,
    ) -> None:
        self.verifier = verifier
        self.task = task
        self.routing = routing
        self.workers = workers
        # TRL logs each reward function under its __name__ (trl.trainer.utils.get_callable_name).
        self.__name__ = f"arbiter_{verifier or task}"

    def _sample(self, i: int, prompt: Any, completion: Any, columns: dict[str, list[Any]]) -> Sample:
        def column(name: str) -> Any:
            return columns[name][i] if name in columns else None

        answer = next((column(c) for c in ANSWER_COLUMNS if column(c) is not None), None)
        language, metadata = plain(column("language")), plain(column("metadata"))
        return Sample(
            id=str(plain(column("id"))) if column("id") is not None else f"trl-{i}",
            task=self.task or "trl",
            completion=completion_text(completion),
            prompt=_prompt_text(prompt),
            answer=reference_text(answer),
            tests=plain(column("tests")),
            language=language if isinstance(language, str) else None,
            metadata=metadata if isinstance(metadata, dict) else {},
        )

    def _score(self, i: int, prompt: Any, completion: Any, columns: dict[str, list[Any]]) -> ScoredSample:
        try:
            sample = self._sample(i, prompt, completion, columns)
        except SampleError as exc:
            return ScoredSample.input_error(None, exc)
        return score_sample(sample, self.routing, default_registry(), only=self.verifier)

    def __call__(self, prompts: Sequence[Any], completions: Sequence[Any], **kwargs: Any) -> list[float | None]:
        columns = {k: v for k, v in kwargs.items() if k not in _TRL_HOOKS and isinstance(v, list)}
        jobs = list(zip(range(len(completions)), prompts, completions, strict=True))
        with ThreadPoolExecutor(max_workers=max(1, min(self.workers, len(jobs)))) as pool:
            results = list(pool.map(lambda job: self._score(*job, columns), jobs))
        if callable(kwargs.get("log_metric")) and results:
            faults = sum(1 for r in results if r.verdict.is_fault or r.is_input_error)
            not_applicable = sum(1 for r in results if r.verdict is Verdict.NOT_APPLICABLE)
            kwargs["log_metric"](f"{self.__name__}/fault_rate", faults / len(results))
            kwargs["log_metric"](f"{self.__name__}/not_applicable_rate", not_applicable / len(results))
        if callable(kwargs.get("log_extra")):
            kwargs["log_extra"](f"{self.__name__}_verdict", [r.verdict.value for r in results])
        return [r.reward for r in results]


def trl_reward_func(
    verifier: str | None = None,
    *,
    task: str | None = None,
    routing: RoutingConfig = DEFAULT_ROUTING,
    workers: int = 8,
) -> TRLRewardFunc:
    """A TRL reward function scoring with one verifier, or with a task's routed, weighted verifiers.

    Pass one of ``verifier`` (a registry name: the reward is that verifier's score) or ``task``
    (a routed task: the reward is the weighted sum). Completions of one batch are scored on
    ``workers`` threads. The returned object pickles, as TRL's async rollout workers require.
    """
    if (verifier is None) == (task is None):
        raise ValueError("pass exactly one of verifier=NAME or task=NAME")
    if workers < 1:
        raise ValueError("workers must be >= 1")
    if verifier is not None and verifier not in default_registry().names():
        raise ValueError(f"unknown verifier {verifier!r}; known: {', '.join(default_registry().names())}")
    if task is not None and task not in routing.tasks:
        raise ValueError(f"task {task!r} is not routed; routed tasks: {', '.join(sorted(routing.tasks))}")
    return TRLRewardFunc(verifier, task, routing, workers)


@functools.lru_cache(maxsize=8)
def _routing(path: str | None) -> RoutingConfig:
    return RoutingConfig.load_or_default(path)


def _verl_task(data_source: str, extra_info: dict[str, Any], routing: RoutingConfig) -> str:
    if isinstance(extra_info.get("task"), str):
        return extra_info["task"]
    if data_source in routing.tasks:
        return data_source
    raise SampleError(
        "data_source",
        f"cannot tell the task of data_source {data_source!r}: set reward_kwargs.task, reward_kwargs.verifier "
        f"or extra_info.task (routed tasks: {', '.join(sorted(routing.tasks))})",
    )


def _verl_sample(
    task: str, solution_str: str, ground_truth: Any, extra_info: dict[str, Any], wants_tests: bool
) -> Sample:
    if wants_tests:
        ground_truth = plain(ground_truth)
        if isinstance(ground_truth, str):
            try:
                ground_truth = json.loads(ground_truth)
            except json.JSONDecodeError as exc:
                raise SampleError("ground_truth", f"tests are not valid JSON: {exc.msg}") from exc
    index = extra_info.get("index")
    return Sample(
        id="verl" if index is None else str(index),
        task=task,
        completion=str(solution_str),
        answer=None if wants_tests else reference_text(ground_truth, "ground_truth"),
        tests=ground_truth if wants_tests else None,
    )


def compute_score(
    data_source: str,
    solution_str: str,
    ground_truth: Any,
    extra_info: dict[str, Any] | None = None,
    *,
    task: str | None = None,
    verifier: str | None = None,
    routing: str | None = None,
    fault_score: float = 0.0,
    **_: Any,
) -> dict[str, Any]:
    """verl's ``compute_score``: the reward as ``score`` plus ``acc``, ``verdict``, ``fault`` and ``masked``.

    ``verifier`` scores with one verifier; otherwise the task is ``task``, else
    ``extra_info["task"]``, else the data source itself, routed by the ``routing`` YAML (default:
    the built-in routing). The ground truth is the answer, or the tests (a JSON string is
    decoded) when a verifier needs tests. A configuration mistake (no task, unknown verifier)
    raises; a malformed ground truth is one sample's fault, logged and flagged by ``fault``; a
    sample no verifier applies to is flagged by ``masked``. Both score ``fault_score``.
    Unknown keyword arguments from newer verl versions are accepted and ignored.
    """
    config = _routing(routing)
    registry = default_registry()
    data_source = plain(data_source)
    extra_info = plain(extra_info) if isinstance(extra_info, Mapping) else {}
    if verifier is not None:
        names, routed = [verifier], task or data_source
    else:
        routed = task or _verl_task(data_source, extra_info, config)
        names = [wv.verifier for wv in config.route(routed)]
    wants_tests = any(registry.get(name).reference == "tests" for name in names)
    try:
        sample = _verl_sample(routed, solution_str, ground_truth, extra_info, wants_tests)
    except SampleError as exc:
        result = ScoredSample.input_error(None, exc)
    else:
        result = score_sample(sample, config, registry, only=verifier)
    if result.is_input_error:
        _log.warning("arbiter: %s: %s (data_source %r)", result.error_field, result.detail, data_source)
    return {
        "score": result.reward if result.reward is not None else fault_score,
        "acc": 1.0 if result.verdict is Verdict.CORRECT else 0.0,
        "verdict": result.verdict.value,
        "fault": 1.0 if result.verdict.is_fault else 0.0,
        "masked": 1.0 if result.verdict is Verdict.NOT_APPLICABLE else 0.0,
    }


def verl_reward_metrics(reward_extra_info: Mapping[str, Sequence[Any]], prefix: str = "arbiter") -> dict[str, float]:
    """Per-batch counts from the extra keys verl collected from `compute_score` (the reward manager's
    ``reward_extra_info``, lists or numpy arrays), ready for verl's metrics dict::

        metrics.update(verl_reward_metrics(reward_extra_infos_dict))

    ``{prefix}/samples``, ``{prefix}/fault`` and ``{prefix}/masked`` (counts), their ``_rate``s,
    and ``{prefix}/verdict/<verdict>`` per verdict seen.
    """
    verdicts = Counter(str(v) for v in plain(reward_extra_info.get("verdict", [])))
    samples = sum(verdicts.values())
    faults = sum(plain(reward_extra_info.get("fault", [])))
    masked = sum(plain(reward_extra_info.get("masked", [])))
    metrics = {f"{prefix}/samples": float(samples), f"{prefix}/fault": float(faults),
               f"{prefix}/masked": float(masked)}
    if samples:
        metrics[f"{prefix}/fault_rate"] = faults / samples
        metrics[f"{prefix}/masked_rate"] = masked / samples
    metrics.update({f"{prefix}/verdict/{verdict}": float(n) for verdict, n in sorted(verdicts.items())})
    return metrics
