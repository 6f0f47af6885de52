"""Feature values a caller supplies by hand, keyed as the ruleset reads them.

A request may supply values by feature text. The ruleset keys its features
by canonical text (``views("Electronics", 24h)``), and a key written by hand
may differ in spacing, in the unit of its window (``1d`` is ``24h``) or in
its spelling (``count("view", "Electronics", 24h)``). ``SuppliedFeatures``
maps each key to the ruleset's own texts for the same value; a key that is
not a feature is refused with the reason, and a feature that the ruleset
does not read from supplied values is reported as ignored, never silently
dropped. Context attributes are read from the request's context, so a
``context.X`` key is ignored too.

One ``SuppliedFeatures`` serves one ruleset version. Keys that already are
the ruleset's texts cost one set comparison per request; any other key is
parsed once and remembered. ``Engine.decide`` and ``DecisionService.decide``
take the ruleset's texts as they are (they run in hot loops): the HTTP API
and ``tailor explain`` go through here first.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from tailor.compiler.features import FeatureKind, FeatureRef, experiment_ref, supplied_feature, value_key
from tailor.dsl.diagnostics import Diagnostic

MAX_REMEMBERED_KEYS = 4096  # keys written by hand, per version: a caller's few spellings, not a growing set


class InvalidFeatures(ValueError):
    """Supplied keys that name no feature, or that name one value twice: (key, why) for each."""

    def __init__(self, problems: list[tuple[str, str]]):
        super().__init__("; ".join(f"{key}: {why}" for key, why in problems))
        self.problems = problems


@dataclass(frozen=True, slots=True)
class IgnoredFeatures:
    """What a decision's response says of the features it was given and did not use."""

    ignored_features: tuple[str, ...] = field(
        default=(),
        metadata={
            "optional": True,
            "doc": "supplied features the ruleset does not read, as they were sent: their values were not used",
        },
    )

    def to_dict(self) -> dict[str, Any]:
        """Nothing when every supplied feature was used."""
        return {"ignored_features": list(self.ignored_features)} if self.ignored_features else {}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> IgnoredFeatures:
        return cls(tuple(data.get("ignored_features", ())))


class SuppliedFeatures:
    """How one ruleset version reads supplied keys: each key to the ruleset's texts for its value."""

    __slots__ = ("_direct", "_read", "_remembered")

    def __init__(self, features: Mapping[str, FeatureRef]):
        """``features``: what the ruleset reads, by its texts (``DecisionPlan.features``)."""
        read: dict[FeatureRef, list[str]] = {}
        for text, ref in features.items():
            if ref.kind is not FeatureKind.CONTEXT:
                read.setdefault(value_key(ref), []).append(text)
        self._read = {key: tuple(texts) for key, texts in read.items()}
        # A text the ruleset reads under no other spelling is its own canonical key.
        self._direct = frozenset(texts[0] for texts in read.values() if len(texts) == 1)
        self._remembered: dict[str, tuple[str, ...] | str] = {}  # key -> its texts (none: ignored), or why not

    def apply(self, supplied: Mapping[str, Any]) -> tuple[Mapping[str, Any], tuple[str, ...]]:
        """The values keyed by the ruleset's texts, and the keys ignored; ``InvalidFeatures`` for bad keys."""
        if self._direct.issuperset(supplied):
            return supplied, ()
        values: dict[str, Any] = {}
        given_by: dict[str, str] = {}
        ignored: list[str] = []
        problems: list[tuple[str, str]] = []
        for key, value in supplied.items():
            texts = self._texts(key)
            if isinstance(texts, str):
                problems.append((key, texts))
                continue
            if not texts:
                ignored.append(key)
            for text in texts:
                other = given_by.setdefault(text, key)
                if other != key:
                    problems.append((key, f"names the same value as {other}; give it once"))
                    break
                values[text] = value
        if problems:
            raise InvalidFeatures(problems)
        return values, tuple(ignored)

    def _texts(self, key: str) -> tuple[str, ...] | str:
        remembered = self._remembered.get(key)
        if remembered is None:
            if len(self._remembered) >= MAX_REMEMBERED_KEYS:
                self._remembered.clear()
            remembered = self._remembered[key] = self._read_key(key)
        return remembered

    def _read_key(self, key: str) -> tuple[str, ...] | str:
        found = supplied_feature(key)
        if isinstance(found, Diagnostic):
            return found.message + (f" ({found.hint})" if found.hint else "")
        texts = self._read.get(value_key(found), ())
        if not texts and found.kind is FeatureKind.MODEL:  # a bare name may be an experiment's: a pinned arm
            texts = self._read.get(value_key(experiment_ref(found.name)), ())
        return texts
