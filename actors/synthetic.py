"""The synthetic strategy of an environment actor: calls served by timer steps, no code to run.

A synthetic worker (``model = {...}``) is a few distributions: CPU, then waiting, then an answer.
Its calls need neither a slot object nor a task: a call's CPU (holding a core, charged to the
request's budget), its wait and its answer are clock callbacks. A call that finds a slot free and
nothing queued starts in the sender's turn; one that finds every slot busy waits in the actor's
mailbox (FIFO), and each finished call starts the oldest waiting one. A call never completes
inside ``post``: completions are timer steps, so a reply never reaches a caller still running.

A replayed request whose log line records its request time (``LoggedRequest``) is served in that
time instead of a latency draw: the model's CPU, then a wait for the rest (none if the CPU took
longer), so that the log's slow requests stay slow and its fast ones fast. The recorded time is
the server's, queueing and all; the model adds its own queueing on top.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any, cast

from actors.mailbox import Call, RpcFailure
from edge.platform.cpu import CpuLimitExceeded
from edge.platform.errors import CPU_LIMIT, platform_error
from edge.platform.fetch import Response
from edge.platform.workers import ModelWorker, SyntheticBody
from edge.scenario.replay import LoggedRequest

if TYPE_CHECKING:
    from actors.environment import EnvironmentActor


class SyntheticCalls:
    """Serves one synthetic environment's calls on behalf of its actor."""

    __slots__ = ("actor", "busy", "_body", "_pacing")

    def __init__(self, actor: EnvironmentActor) -> None:
        self.actor = actor
        self.busy = 0  # calls in service
        # Live, a timer fires a little late (the event loop was busy), which virtual time never
        # does: the final wait ends early by the running mean of that lateness (see
        # ``actors.context.Pacing``), so that answers come when the model says, on average.
        self._pacing = actor.pacing if actor.live else None
        self._body = SyntheticBody(actor.service, actor.environment, actor.version)

    def post(self, call: Call) -> Response | None:
        """Start the call if a slot is free and none is queued, else queue or shed it."""
        actor = self.actor
        if self.busy < actor.concurrency and not actor.mailbox.waiting and not actor.down:
            self.busy += 1
            self._begin(call)
            return None
        return actor.queue_or_shed(call)

    def _begin(self, call: Call) -> None:
        actor = self.actor
        cold = actor.begin(call)
        worker = cast(ModelWorker, actor.worker)  # the version that began the call answers it, even if another is deployed meanwhile
        if call.method is not None:
            failure = RpcFailure(f"{actor.service} is a synthetic model: it has no RPC methods", missing=True)
            actor.clock.call_later(cold, self._done, call, failure)
        elif cold:
            actor.clock.call_later(cold, self._cpu, call, worker)
        else:
            self._cpu(call, worker)

    def _cpu(self, call: Call, worker: ModelWorker) -> None:
        actor = self.actor
        wanted = worker.cpu.sample(actor.rng)
        if wanted <= 0:
            self._wait(call, worker, 0.0)
            return
        try:
            granted = call.account.charge(wanted, actor.key)
        except CpuLimitExceeded:
            actor.clock.call_later(0.0, self._done, call, platform_error(CPU_LIMIT))
            return
        actor.stats.cpu_seconds += granted
        if actor.cores.take():
            actor.clock.call_later(granted, self._off_core, call, worker, granted, granted < wanted)
        else:
            actor.cores.wait(functools.partial(actor.clock.call_later, granted, self._off_core, call, worker, granted, granted < wanted))

    def _off_core(self, call: Call, worker: ModelWorker, granted: float, short: bool) -> None:
        self.actor.cores.release(granted)
        if short:
            self._done(call, platform_error(CPU_LIMIT))
        else:
            self._wait(call, worker, granted)

    def _wait(self, call: Call, worker: ModelWorker, spent: float) -> None:
        actor = self.actor
        request = call.request
        if type(request) is LoggedRequest and worker.logged_scale is not None:
            wait = max(request.service_time * worker.logged_scale - spent, 0.0)
        else:
            wait = worker.latency.sample(actor.rng)
        if self._pacing is not None:
            wait = max(wait - self._pacing.tail, 0.0)
        actor.clock.call_later(wait, self._answer, call, worker)

    def _answer(self, call: Call, worker: ModelWorker) -> None:
        if self._pacing is not None:
            self._pacing.observe(self.actor.clock.late())
        if self._body.version != call.version:  # a deploy, promotion or rollback since the last answer
            self._body = SyntheticBody(self.actor.service, self.actor.environment, call.version)
        self._done(call, worker.respond(self.actor.rng, self._body))

    def _done(self, call: Call, result: Any) -> None:
        actor = self.actor
        actor.finish(call, result)
        if actor.mailbox.waiting:  # the freed slot takes the oldest waiting call
            self._begin(actor.mailbox.take())
        else:
            self.busy -= 1
