"""One decision's flow, written once: stage 0, the store's features, the supplied ones, stages 1 and 2.

Both ways of deciding run it: the in-process ``Engine`` (synchronous) and the
server's ``DecisionService`` (asynchronous, within a deadline). Only the
fetch differs between them, so the flow leaves the fetch to its caller and
does no I/O itself; it is two steps with the fetch in between:

- ``begin`` draws the user's experiment arms and holdout (``Decider.assign``:
  a pure function of the request, no I/O), runs stage 0 (``Decider.begin``)
  on them and says what the store must
  still supply (``Pending.missing``): the store features the surviving
  candidates read, less those the request supplies, for a user. Without a
  store or a user nothing is missing, and a feature nobody supplied is what
  ``Values`` makes of an absent one: 0 for counts and totals, else unknown.
- the caller fetches ``Pending.refs()`` for ``Pending.user_id``; when the
  fetch fails or misses its deadline, ``Pending.unknown()`` stands for its
  answer: every missing feature unknown (None, counters included), and the
  decision is degraded.
- ``finish`` lays the supplied values over the fetched ones and runs stages
  1 and 2 (``Decider.finish``), with models through
  ``ModelRunner.for_decision``.

A sans-I/O generator would read as one function, but driving one costs a
generator and a ``StopIteration`` per decision; two plain calls and one named
tuple cost less than any fetch.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from tailor.compiler.decide import Decider, Outcomes
from tailor.compiler.experiments import NO_ASSIGNMENT, Assignment
from tailor.compiler.features import FeatureRef

from .inference import ModelRunner

log = logging.getLogger("tailor.runtime")


class Pending(NamedTuple):
    """A decision between its two steps. A named tuple: built per decision, and the cheapest such object."""

    decider: Decider
    user_id: str | None
    context: Mapping[str, Any]
    slots: tuple[str, ...] | None
    features: Mapping[str, Any] | None  # supplied by the request: they override the store
    alive: int  # the candidates stage 0 left
    needed: tuple[str, ...]  # store features they read (the decision's ``fetched``)
    missing: tuple[str, ...] | list[str]  # what the store must still supply; empty when it is not asked
    assignment: Assignment  # the experiment arms drawn from the user id, and whether the user is held out

    def refs(self) -> list[FeatureRef]:
        """The missing features, as the store's ``fetch`` takes them."""
        return self.decider.refs(self.missing)

    def unknown(self) -> dict[str, None]:
        """What a failed fetch stands for: every missing feature unknown, counters included."""
        return dict.fromkeys(self.missing)


def begin(
    decider: Decider,
    user_id: str | None,
    context: Mapping[str, Any] | None,
    slots: Iterable[str] | None,
    features: Mapping[str, Any] | None,
    *,
    store: bool = True,
    consent: bool = True,
) -> Pending:
    """Stage 0, and what the store must supply: nothing without a store (``store=False``) or a user.

    Without ``consent`` the rules that need it are removed in stage 0, so none of their features is missing.
    """
    context = context if context is not None else {}
    slots = tuple(slots) if slots is not None else None  # read twice: by stage 0 and by stage 2
    assignment = decider.assign(user_id, features) if decider.assigner is not None else NO_ASSIGNMENT
    alive, needed = decider.begin(context, slots, assignment, consent)
    if not store or user_id is None or not needed:
        missing: tuple[str, ...] | list[str] = ()
    elif features:
        missing = [text for text in needed if text not in features]  # a supplied value is not fetched
    else:
        missing = needed
    return Pending(decider, user_id, context, slots, features, alive, needed, missing, assignment)


def finish(
    pending: Pending,
    fetched: Mapping[str, Any] | None,
    models: ModelRunner | None,
    deadline: float | None = None,
    degraded: bool = False,
    consent: bool = True,
    stored: Mapping[str, Any] | None = None,
) -> Outcomes:
    """Stages 1 and 2 on the fetched values (None when nothing was fetched) under the supplied ones.

    ``models`` is None when the ruleset has none; ``deadline`` (a ``time.perf_counter()``
    instant) bounds inference too. ``consent`` False (the store said the user declined)
    removes the rules that need consent before stage 1. ``stored``: the cached predictions
    the fetch read (``prediction_cache.py``).
    """
    decider, user_id, context, slots, features, alive, needed, _, assignment = pending  # one unpacking: the hot path
    if fetched is None:
        values = features if features is not None else {}
    elif features:
        values = {**fetched, **features}
    else:
        values = fetched
    if models is None:
        run_model = None
    elif stored is None:
        run_model = models.for_decision(user_id, deadline)
    else:  # the store's cached predictions, read with the features
        run_model = models.for_decision(user_id, deadline, stored)
    return decider.finish(context, alive, needed, values, slots, run_model, degraded, assignment, consent)


@dataclass(slots=True)
class StoreHealth:
    """Whether the store answered last time: the log says when that changes, never once per decision."""

    down: bool = False

    def failed(self, why: str) -> None:
        if not self.down:
            self.down = True
            log.warning("the feature store failed (%s); deciding without it until it answers", why)

    def answered(self) -> None:
        if self.down:
            self.down = False
            log.info("the feature store answers again; decisions are no longer degraded")
