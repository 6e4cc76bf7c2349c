"""The version history of one service environment, as Workers keeps it: versions and deployments.

A *version* is what an environment runs (code or model, vars, secrets, bindings, injected faults)
as it was made: by a deploy, a ``set``, a promotion (which records where it came from, "from
app@staging v4") or the admin API. Numbers only grow: a new version is numbered above every earlier
one, and an explicit number that is not is refused. A *deployment* says which version serves from
when. Cloudflare's rollback "creates a new deployment with the version specified": it re-activates
an earlier version rather than making a new one, so a rollback here appends a deployment and the
version's number comes back (its answers count under it again). As on Workers, only the
``ROLLBACK_LIMIT`` most recent versions can be rolled back to, which also bounds what is kept.

What a version runs is opaque here (the environment actor's snapshot), so the scenario checks can
replay a timeline's numbering with the same rules (``edge check``) without building actors.
"""

from __future__ import annotations

from typing import Generic, TypeVar

import msgspec

State = TypeVar("State")

ROLLBACK_LIMIT = 10
"""Workers: "you can only roll back to the 10 most recently published versions"."""


class VersionError(ValueError):
    """A version change that cannot be made (a number that does not grow, nothing to roll back to)."""


class UnknownVersion(VersionError):
    """A rollback to a version the environment never had."""


class Version(msgspec.Struct):
    """One version of an environment, for reports and the admin API (never what it runs: secrets)."""

    number: int
    at_s: float
    """Simulated (or, live, server) time it was made."""
    message: str
    tags: dict[str, str]
    source: str | None = None
    """Where a promoted version came from: "from app@staging v4"."""


class Deployment(msgspec.Struct):
    """From ``at_s`` on, ``version`` serves."""

    at_s: float
    version: int
    message: str


class VersionHistory(Generic[State]):
    """Versions and deployments of one environment (``key``, e.g. "api@production")."""

    def __init__(self, key: str, first: Version, state: State) -> None:
        self.key = key
        self.versions: list[Version] = [first]
        self.deployments: list[Deployment] = [Deployment(first.at_s, first.number, first.message)]
        self._states: dict[int, State] = {first.number: state}

    @property
    def active(self) -> int:
        return self.deployments[-1].version

    @property
    def latest(self) -> int:
        return self.versions[-1].number

    def next_number(self, requested: int | None = None) -> int:
        """The number a new version gets: ``requested`` if it is above every earlier one."""
        if requested is None:
            return self.latest + 1
        if requested <= self.latest:
            raise VersionError(f"{self.key}: version {requested} is not above every earlier one (the latest is {self.latest}): version numbers only grow")
        return requested

    def create(self, state: State, *, at_s: float, message: str, tags: dict[str, str], number: int | None = None,
               source: str | None = None) -> Version:
        """A new version, deployed at once."""
        version = Version(self.next_number(number), at_s, message, dict(tags), source)
        self.versions.append(version)
        self._states[version.number] = state
        if len(self._states) > ROLLBACK_LIMIT:
            del self._states[next(iter(self._states))]  # the oldest: past the rollback limit
        self.deployments.append(Deployment(at_s, version.number, message))
        return version

    def rollback_target(self, to: int | None = None) -> int:
        """The version a rollback to ``to`` re-activates (None: the one deployed before the current)."""
        active = self.active
        if to is None:
            earlier = [d.version for d in self.deployments if d.version != active]
            if not earlier:
                raise VersionError(f"{self.key}: nothing to roll back to, only version {active} was ever deployed")
            to = earlier[-1]
        if not any(v.number == to for v in self.versions):
            known = ", ".join(str(v.number) for v in self.versions)
            raise UnknownVersion(f"{self.key} has no version {to} (versions: {known})")
        if to == active:
            raise VersionError(f"{self.key} already runs version {to}")
        if to not in self._states:
            raise VersionError(f"{self.key}: version {to} is older than the {ROLLBACK_LIMIT} most recent versions, the only ones a rollback can return to")
        return to

    def rollback(self, to: int | None, *, at_s: float, message: str = "") -> tuple[int, State]:
        """Re-activate an earlier version: a new deployment of it. Returns its number and state."""
        number = self.rollback_target(to)
        note = f"rollback from v{self.active}" + (f": {message}" if message else "")
        self.deployments.append(Deployment(at_s, number, note))
        return number, self._states[number]

    def record(self) -> "History":
        return History(active=self.active, versions=list(self.versions), deployments=list(self.deployments))


class History(msgspec.Struct):
    """An environment's history as JSON (admin API)."""

    active: int
    versions: list[Version]
    deployments: list[Deployment]
