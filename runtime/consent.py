"""Consent at run time: the profile attribute that says a user declined, and what it keeps from the store.

A user declines personalization in two ways: a request says ``"consent": false``,
or, when the server runs with ``--consent-attribute user.consent``, that profile
attribute holds JSON ``false``. The second is only known by reading the store,
and must be known *before* anything personal is read, so the store checks it
first, inside the decision's one round trip (``ConsentGate``): for a user whose
attribute is ``false`` it reads nothing but the ``public`` user attributes.

Decisions without consent get an id ending in ``NO_CONSENT_SUFFIX``: feedback on
them is dropped without reading the store, since nothing was kept for them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from tailor.compiler.features import FeatureKind, FeatureRef

DECLINED = "false"  # the consent attribute's stored JSON text when the user declined
NO_CONSENT_SUFFIX = "-nc"  # ends the id of a decision made without consent


@dataclass(frozen=True, slots=True)
class ConsentGate:
    """What a store checks before a read: the consent attribute, and what it may read when that is false.

    ``attribute`` is the profile attribute's name (``consent`` for ``user.consent``);
    ``public`` the texts of the user attributes the served ruleset declares public.
    """

    attribute: str
    public: frozenset[str] = frozenset()

    @property
    def text(self) -> str:
        """The attribute as rules write it, and the key of its value in a fetch's answer."""
        return f"user.{self.attribute}"

    def allowed(self, features: Sequence[FeatureRef]) -> list[FeatureRef]:
        """The features a store may read for a user who declined: the public user attributes."""
        public = self.public
        return [ref for ref in features if ref.kind is FeatureKind.PROFILE and ref.text in public]


def consent_attribute(text: str) -> str:
    """The name of the profile attribute ``--consent-attribute`` gives (``user.consent``); ValueError if not one."""
    scope, dot, name = text.partition(".")
    if scope != "user" or not dot or not name.isidentifier():
        raise ValueError(f"the consent attribute is a profile attribute, like user.consent, not {text!r}")
    return name


def declined(fetched: dict, gate: ConsentGate) -> bool:
    """Whether a gated fetch's answer says the user declined."""
    return fetched.get(gate.text) is False


def decision_id_without_consent(decision_id: str) -> str:
    return decision_id + NO_CONSENT_SUFFIX


def made_without_consent(decision_id: str) -> bool:
    return decision_id.endswith(NO_CONSENT_SUFFIX)
