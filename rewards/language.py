"""Language-consistency reward: the share of the chain of thought written in the target language.

DeepSeek-R1 (DeepSeek-AI 2025, "DeepSeek-R1: Incentivizing Reasoning Capability in LLMs via
Reinforcement Learning", §2.3.3) adds this reward because RL made the CoT mix languages; it is
"calculated as the proportion of target language words in the CoT".

How the share is measured here (documented because short texts defeat language detectors):

1. The CoT is the text of the ``<think>`` block (see `rewards.format.think_block`). LaTeX math
   (``$…$``, ``\\(…\\)``, ``\\[…\\]``), LaTeX commands and code spans are removed first: they
   belong to no natural language.
2. Words are runs of letters; a Han, Hiragana or Katakana character counts as one word, since
   those scripts do not separate words with spaces. Single Latin letters (variables) are ignored.
3. The text is cut into segments at sentence ends, line breaks and changes of script, and
   consecutive segments of the same script are merged until each holds ``min_detect_words``
   words, because langdetect guesses wildly on three-word sentences ("Let me check again" -> fr).
4. A chunk in a script the target language is not written in is not target-language. A chunk in
   a script only one language uses (Hangul, Greek, Hebrew, Thai, …) is decided by script; Han
   text is Japanese if it contains kana, else Chinese. Otherwise langdetect (seeded, so the
   result is deterministic) picks the most probable language; a chunk shorter than
   ``min_detect_words`` that could not be merged is given the benefit of the doubt.
5. score = target-language words / all words, in [0, 1]; CORRECT only when it is 1.0.

The target language is ``metadata["cot_language"]``, else ``Sample.language``, else ``"en"``,
as a langdetect code (``en``, ``fr``, ``zh`` …; ``zh-cn`` and ``zh-tw`` both count as ``zh``).
An unknown code is a SampleError, so a code sample whose ``language`` is ``python`` must set
``metadata.cot_language`` before it is routed here. A completion without a think block, or one
whose CoT has no words, is NOT_APPLICABLE: the format reward already punishes a missing block.

langdetect ships its language profiles inside the wheel; nothing is downloaded.
"""

from __future__ import annotations

import functools
import re
import threading
import unicodedata
from dataclasses import dataclass

from langdetect.detector_factory import PROFILES_DIRECTORY, DetectorFactory
from langdetect.lang_detect_exception import LangDetectException

from rewards.format import think_block
from rewards.types import Sample, SampleError, VerifierResult

_MATH_OR_CODE = re.compile(
    r"```.*?```|`[^`]*`|\$\$.*?\$\$|\$[^$]*\$|\\\(.*?\\\)|\\\[.*?\\\]|\\[A-Za-z]+",
    flags=re.DOTALL,
)
_SENTENCE_END = re.compile(r"[.!?;:。！？；：\n]+")
_LETTER_RUN = re.compile(r"[^\W\d_]+")

# Scripts langdetect's languages are written in; a language absent here is written in Latin.
_SCRIPT_OF_LANGUAGE = {
    **dict.fromkeys(("ar", "fa", "ur"), "ARABIC"),
    **dict.fromkeys(("bg", "mk", "ru", "uk"), "CYRILLIC"),
    **dict.fromkeys(("hi", "mr", "ne"), "DEVANAGARI"),
    **dict.fromkeys(("zh", "ja"), "CJK"),
    "bn": "BENGALI",
    "el": "GREEK",
    "gu": "GUJARATI",
    "he": "HEBREW",
    "kn": "KANNADA",
    "ko": "HANGUL",
    "ml": "MALAYALAM",
    "pa": "GURMUKHI",
    "ta": "TAMIL",
    "te": "TELUGU",
    "th": "THAI",
}
_CJK_PREFIXES = ("CJK", "HIRAGANA", "KATAKANA")
_KANA_PREFIXES = ("HIRAGANA", "KATAKANA")


def _base(code: str) -> str:
    """langdetect's zh-cn/zh-tw are one language for consistency purposes."""
    return code.lower().split("-")[0]


def _script(char: str) -> str:
    name = unicodedata.name(char, "")
    if name.startswith(_CJK_PREFIXES):
        return "CJK"
    return name.split(" ")[0] if name else "UNKNOWN"


@functools.cache
def _script_languages() -> dict[str, frozenset[str]]:
    languages: dict[str, set[str]] = {}
    for lang in known_languages():
        languages.setdefault(_SCRIPT_OF_LANGUAGE.get(lang, "LATIN"), set()).add(lang)
    return {script: frozenset(langs) for script, langs in languages.items()}


_factory_lock = threading.Lock()
_factory_instance: DetectorFactory | None = None


def _factory() -> DetectorFactory:
    """One process-wide profile set (0.4 s to load), built on first use, never on import."""
    global _factory_instance
    with _factory_lock:
        if _factory_instance is None:
            factory = DetectorFactory()
            factory.load_profile(PROFILES_DIRECTORY)
            factory.set_seed(0)  # langdetect samples n-grams at random; a fixed seed makes it deterministic
            _factory_instance = factory
        return _factory_instance


@functools.cache
def known_languages() -> frozenset[str]:
    return frozenset(_base(lang) for lang in _factory().get_lang_list())


@dataclass(frozen=True)
class _Chunk:
    script: str
    text: str
    words: int
    has_kana: bool


def _words(text: str) -> tuple[int, bool]:
    """(word count, whether kana occurs); Han and kana characters are one word each."""
    words, kana = 0, False
    for run in _LETTER_RUN.findall(text):
        if _script(run[0]) == "CJK":
            words += len(run)
            kana = kana or any(unicodedata.name(c, "").startswith(_KANA_PREFIXES) for c in run)
        elif len(run) > 1:
            words += 1
    return words, kana


def _segments(cot: str) -> list[tuple[str, str]]:
    """(script, text) pieces: split at sentence ends and wherever the letters change script."""
    pieces: list[tuple[str, str]] = []
    for sentence in _SENTENCE_END.split(_MATH_OR_CODE.sub(" ", cot)):
        script, start = None, 0
        for i, char in enumerate(sentence):
            if not char.isalpha():
                continue
            char_script = _script(char)
            if script is not None and char_script != script:
                pieces.append((script, sentence[start:i]))
                start = i
            script = char_script
        if script is not None:
            pieces.append((script, sentence[start:]))
    return pieces


def _chunks(cot: str, min_words: int) -> list[_Chunk]:
    chunks: list[_Chunk] = []
    for script, text in _segments(cot):
        words, kana = _words(text)
        if words == 0:
            continue
        last = chunks[-1] if chunks else None
        if last is not None and last.script == script and last.words < min_words:
            chunks[-1] = _Chunk(script, f"{last.text}. {text}", last.words + words, last.has_kana or kana)
        else:
            chunks.append(_Chunk(script, text, words, kana))
    # A short tail joins the chunk before it when both share a script.
    if len(chunks) > 1 and chunks[-1].words < min_words and chunks[-2].script == chunks[-1].script:
        tail, head = chunks.pop(), chunks.pop()
        merged_kana = head.has_kana or tail.has_kana
        chunks.append(_Chunk(tail.script, f"{head.text}. {tail.text}", head.words + tail.words, merged_kana))
    return chunks


@dataclass(frozen=True)
class LanguageConsistencyConfig:
    default_language: str = "en"
    """Target when neither metadata.cot_language nor Sample.language names one."""
    min_detect_words: int = 12
    """Merge same-script sentences up to this many words before asking langdetect: with 6, two of
    eight short English CoTs lost a quarter or more of their words to French; with 12, none did."""

    def __post_init__(self) -> None:
        if self.min_detect_words < 1:
            raise ValueError("min_detect_words must be >= 1")
        if _base(self.default_language) not in known_languages():
            raise ValueError(f"default_language {self.default_language!r} is not a language langdetect knows")


class LanguageConsistencyVerifier:
    """Fraction of the CoT's words written in the target language (DeepSeek-R1 §2.3.3)."""

    name = "language"
    version = "1"
    reference = "none"

    def __init__(self, config: LanguageConsistencyConfig | None = None) -> None:
        self.config = config or LanguageConsistencyConfig()

    def score(self, sample: Sample) -> VerifierResult:
        target = self._target(sample)
        cot = think_block(sample.completion)
        if cot is None:
            return VerifierResult.not_applicable("no </think>: no chain of thought to judge")
        chunks = _chunks(cot, self.config.min_detect_words)
        total = sum(c.words for c in chunks)
        if total == 0:
            return VerifierResult.not_applicable("the chain of thought has no words")
        by_language: dict[str, int] = {}
        for chunk in chunks:
            language = self._language_of(chunk, target)
            by_language[language] = by_language.get(language, 0) + chunk.words
        share = by_language.get(target, 0) / total
        detail = f"{share:.0%} of {total} words in {target!r} (" + ", ".join(
            f"{lang}: {n}" for lang, n in sorted(by_language.items(), key=lambda kv: -kv[1])
        ) + ")"
        return VerifierResult.graded(share, detail)

    def _target(self, sample: Sample) -> str:
        field, code = "language", sample.language
        if "cot_language" in sample.metadata:
            field, code = "metadata.cot_language", sample.metadata["cot_language"]
        if code is None:
            return _base(self.config.default_language)
        if not isinstance(code, str) or _base(code) not in known_languages():
            known = ", ".join(sorted(known_languages()))
            raise SampleError(field, f"{code!r} is not a language langdetect knows ({known})")
        return _base(code)

    def _language_of(self, chunk: _Chunk, target: str) -> str:
        languages = _script_languages().get(chunk.script, frozenset())
        if chunk.script == "CJK":
            return "ja" if chunk.has_kana else "zh"
        if len(languages) == 1:
            return next(iter(languages))
        if not languages:
            return chunk.script.lower()
        if chunk.words < self.config.min_detect_words and target in languages:
            return target
        detector = _factory().create()
        detector.append(chunk.text)
        try:
            best = detector.get_probabilities()[0].lang
        except LangDetectException:
            return target if target in languages else chunk.script.lower()
        return _base(best)
