"""What is being served: the version, its rules, the versions a rollback returns to, and the last failed edit.

``GET /v1/ruleset`` (and a rollback) answer with a ``RulesetStatus``. Its
file names are relative to the ruleset's root (``RulesetRoot``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from tailor.compiler.ruleset import RuleInfo
from tailor.dsl.diagnostics import Diagnostic

from .fleet import Fleet
from .ruleset_root import RulesetRoot
from .service import DecisionService


@dataclass(frozen=True, slots=True)
class VersionInfo:
    """A version kept for rollback."""

    version: str
    loaded_at: datetime

    def to_dict(self) -> dict[str, Any]:
        return {"version": self.version, "loaded_at": self.loaded_at.isoformat()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> VersionInfo:
        return cls(data["version"], datetime.fromisoformat(data["loaded_at"]))


@dataclass(frozen=True, slots=True)
class RulesetStatus:
    name: str
    version: str
    files: tuple[str, ...]
    loaded_at: datetime
    rules: tuple[RuleInfo, ...]
    last_error: tuple[Diagnostic, ...] | None = field(
        metadata={"doc": "why the newest edit did not compile, if it did not"}
    )
    previous: tuple[VersionInfo, ...] = field(metadata={"doc": "versions a rollback returns to, newest first"})
    fleet: Fleet | None = field(
        default=None,
        metadata={
            "doc": "the server processes sharing the store, from their heartbeats, and whether they serve the "
            "same versions; null when the store could not be read"
        },
    )

    @classmethod
    def of(cls, service: DecisionService, root: RulesetRoot | None = None, fleet: Fleet | None = None) -> RulesetStatus:
        """The service's status, its file names relative to ``root``; ``NotReady`` before a version is served."""
        served = service.serving()
        root = root or RulesetRoot.of(service.path)
        ruleset = served.ruleset
        last_error = service.last_error
        return cls(
            ruleset.name,
            ruleset.version,
            tuple(root.name(name) for name in ruleset.files),
            served.loaded_at,
            tuple(replace(rule, file=root.name(rule.file)) for rule in served.rules),
            None if last_error is None else tuple(shown_diagnostic(Diagnostic.from_dict(d), root) for d in last_error),
            tuple(VersionInfo(old.version, old.loaded_at) for old in reversed(service.previous)),
            fleet,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "files": list(self.files),
            "loaded_at": self.loaded_at.isoformat(),
            "rules": [rule.to_dict() for rule in self.rules],
            "last_error": None if self.last_error is None else [d.to_dict() for d in self.last_error],
            "previous": [old.to_dict() for old in self.previous],
            "fleet": None if self.fleet is None else self.fleet.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RulesetStatus:
        last_error = data["last_error"]
        fleet = data.get("fleet")
        return cls(
            data["name"],
            data["version"],
            tuple(data["files"]),
            datetime.fromisoformat(data["loaded_at"]),
            tuple(RuleInfo.from_dict(rule) for rule in data["rules"]),
            None if last_error is None else tuple(Diagnostic.from_dict(d) for d in last_error),
            tuple(VersionInfo.from_dict(old) for old in data["previous"]),
            None if fleet is None else Fleet.from_dict(fleet),
        )


def shown_diagnostic(diagnostic: Diagnostic, root: RulesetRoot) -> Diagnostic:
    """A diagnostic with its places relative to ``root``, and no absolute root in its words."""
    return replace(
        diagnostic,
        message=root.text(diagnostic.message),
        hint=root.text(diagnostic.hint),
        file=root.name(diagnostic.file),
        related=tuple(replace(r, message=root.text(r.message), file=root.name(r.file)) for r in diagnostic.related),
    )
