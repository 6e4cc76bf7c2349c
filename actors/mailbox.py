"""A bounded mailbox served by consumers (trio tasks or fibers), and the Call message that travels in it.

Why not a trio memory channel: its ``send_nowait`` does hand a message straight to a waiting
receiver, queue it, or raise ``WouldBlock`` when the buffer is full, without blocking, which is what
``post`` needs. But a channel's receivers are trio tasks, parked in trio's scheduler: a virtual-time
slot is a fiber the clock resumes itself (``edge.platform.fibers``), which cannot wait on a channel;
and a channel wakes the receiver that has waited longest, where a warm slot should be the one used
last. This mailbox does three things only:

* ``post`` never blocks: it hands the message to an idle consumer (which is woken with it), queues it
  FIFO, or refuses it when the queue is at capacity, so that the sender can shed it (503).
* ``receive`` returns the next queued message without a task switch when there is one, so a busy
  actor drains its whole backlog per wake-up, and parks the consumer otherwise.
* idle consumers form a stack: the most recently used one is woken first, which keeps few consumers
  warm (cold starts) and the rest idle, as an isolate pool does.

Messages are plain objects; the ``Call`` below is what bindings, routers and the ingress exchange.
"""

from __future__ import annotations

from collections import deque
from typing import Any, Awaitable, Callable

import outcome
from trio.lowlevel import Abort, current_task, reschedule, wait_task_rescheduled

from edge.platform import fibers, runs


class Mailbox:
    """FIFO queue of at most ``capacity`` waiting messages, consumed by any number of consumers.

    A consumer is a trio task (live slots, a router) or a fiber (virtual-time slots); an idle one is
    kept as the function that wakes it with a message, so that ``post`` treats both alike.
    """

    __slots__ = ("capacity", "waiting", "_idle", "_fewest_idle")

    def __init__(self, capacity: int) -> None:
        if capacity < 0:
            raise ValueError(f"mailbox capacity must be >= 0, got {capacity}")
        self.capacity = capacity
        # Read-only outside: actors test it for emptiness directly, cheaper than len() on a hot path.
        self.waiting: deque[Any] = deque()
        self._idle: list[Callable[[Any], None]] = []
        self._fewest_idle = 0  # the least ``_idle`` held since ``retire_unused`` last looked

    def __len__(self) -> int:
        """Messages waiting (not yet taken by a consumer): the mailbox depth."""
        return len(self.waiting)

    @property
    def has_idle(self) -> bool:
        """A consumer is parked in ``receive``: ``post`` would hand it the message."""
        return bool(self._idle)

    def post(self, message: Any) -> bool:
        """Deliver ``message``; False means the mailbox is full and the caller must shed it."""
        idle = self._idle
        if idle:
            idle.pop()(message)
            if len(idle) < self._fewest_idle:
                self._fewest_idle = len(idle)
            return True
        self._fewest_idle = 0
        if len(self.waiting) < self.capacity:
            self.waiting.append(message)
            return True
        return False

    def retire_unused(self, message: Any, keep: int) -> int:
        """Wake with ``message`` the idle consumers none of which was needed since the last look,
        longest idle first, keeping at least ``keep`` idle; returns how many were woken.

        Why: consumers that a burst called into being, then parked, would otherwise stay forever,
        each holding what it allocated while the burst ran (and so CPython's memory arenas from
        then). The idle stack wakes the most recent first, so the bottom of it is what no call
        reached: ``post`` keeps the stack's low-water mark for this.
        """
        unused = min(self._fewest_idle, len(self._idle) - keep)
        retired, self._idle[:unused] = self._idle[:unused], []
        for wake in retired:
            wake(message)
        self._fewest_idle = len(self._idle)
        return len(retired)

    def take(self) -> Any:
        """The oldest waiting message; the mailbox must not be empty."""
        return self.waiting.popleft()

    def force(self, message: Any) -> None:
        """Deliver ``message`` even past capacity.

        For replies an actor is owed (answers to calls it made): refusing one would lose a request
        the actor already accepted, and their number is bounded by the calls it has out.
        """
        if not self.post(message):
            self.waiting.append(message)

    async def receive(self) -> Any:
        """The next message, waiting for one if the queue is empty.

        Returning a queued message does not yield to the scheduler; callers that loop on it must
        reach a checkpoint in handling each message (every actor here does, or drains a bounded
        backlog and then parks).
        """
        if self.waiting:
            return self.waiting.popleft()
        fiber = runs.current().fiber
        if fiber is not None:
            wake = fiber.wake
            self._idle.append(wake)
            try:
                return await fibers.suspend()
            except GeneratorExit:  # the fiber is closed (end of run): it consumes nothing more
                if wake in self._idle:  # not if a post woke it and the run ended before it resumed
                    self._idle.remove(wake)
                raise
        task = current_task()

        def wake_task(message: Any) -> None:
            reschedule(task, outcome.Value(message))

        self._idle.append(wake_task)

        def abort(_: Any) -> Abort:
            self._idle.remove(wake_task)
            return Abort.SUCCEEDED

        return await wait_task_rescheduled(abort)


class Call:
    """One request travelling to an actor: a fetch (``method is None``) or an RPC method call.

    ``on_reply(call, result)`` is how the answer travels back; it is set by whoever waits (a parked
    task, a router, the ingress), so that an answer costs a function call, not a channel. The
    actor that answers writes ``served_by`` (its "service@environment" key) and ``version`` so
    that metrics and reports can say who answered a request that went through a router.

    ``args``/``kwargs`` are an RPC call's arguments and nothing else; ``context`` is what the reply
    target needs to finish its own work (the front door's record of a top-level request, a
    router's attempt). The actor that serves the call reads neither ``context`` nor ``waiter``.
    """

    __slots__ = (
        "request",
        "account",
        "method",
        "args",
        "kwargs",
        "on_reply",
        "posted_at",
        "answered_at",
        "served_by",
        "version",
        "routed_to",
        "context",
        "waiter",
        "cancelled",
        "scope",
        "thrown",
    )

    def __init__(
        self,
        request: Any,
        account: Any,
        on_reply: Callable[[Call, Any], None],
        posted_at: float,
        method: str | None = None,
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
    ) -> None:
        self.request = request
        self.account = account
        self.on_reply = on_reply
        self.posted_at = posted_at
        self.answered_at = 0.0  # when an environment answered it (0: none did), before the hop back
        self.method = method
        self.args = args
        self.kwargs = kwargs
        self.served_by: Any = None
        self.version = ""
        self.routed_to: str | None = None  # the environment a router first chose for this call
        self.context: Any = None
        self.waiter: Any = None  # the task or fiber parked in ask(), if any
        self.cancelled = False
        self.scope: Any = None  # the cancel scope of the slot running this call, if any
        self.thrown: Exception | None = None  # what the worker serving a fetch call raised, for a binding to raise again

    def cancel(self) -> None:
        """Nobody wants the answer any more (the client hung up): stop the work it causes.

        Live, a call running in a code slot is cancelled there (its own binding calls are
        abandoned in turn, so the whole chain below it stops), and one still queued is skipped
        when a slot takes it: either way its slot is free for other calls at once. In virtual
        time nobody hangs up, and the flag is all there is.
        """
        self.cancelled = True
        if self.scope is not None:
            self.scope.cancel()

    def abandon(self, _: Any) -> Abort:
        """The waiting caller was cancelled: the answer, when it comes, goes nowhere, and the
        work done for it stops."""
        self.on_reply = discard_reply
        self.cancel()
        return Abort.SUCCEEDED


class RpcFailure:
    """The answer to an RPC call whose method failed or does not exist; the caller's binding
    raises it as ``RpcError`` with this message (the callee's error, secrets redacted).

    A method may fail on purpose with a status: an exception with an int ``status`` (400..599) and
    optionally a string ``code`` (what seed 004's gateway maps to its JSON error answer). ``detail``
    is the exception's own message (as ``message`` is: workerd hands the caller the callee's message
as it is)."""

    __slots__ = ("message", "status", "code", "detail", "missing")

    def __init__(self, message: str, status: int = 500, code: str | None = None, detail: str | None = None, *, missing: bool = False) -> None:
        self.message = message
        self.status = status
        self.code = code
        self.detail = message if detail is None else detail
        self.missing = missing
        """No such method: the caller's binding raises a ``TypeError``, as calling what is not a
        function does in JavaScript."""


def discard_reply(call: Call, result: Any) -> None:
    """The reply target of a call whose caller went away (cancelled): the answer has no reader."""


def _wake_task(call: Call, result: Any) -> None:
    reschedule(call.waiter, outcome.Value(result))


def _wake_fiber(call: Call, result: Any) -> None:
    call.waiter.wake(result)


def ask(post: Callable[[Call], Any], call: Call) -> Awaitable[Any]:
    """Post ``call`` with ``post``; awaiting the result parks the caller (task or fiber) until the reply.

    ``post`` returns None when the call was accepted, or an immediate answer (a shed 503, a 404)
    that is returned without parking: a reply must never reschedule a task that is still running.
    Call it only to await it at once: the call is posted here, and the reply wakes whoever called
    ``ask``. A plain function returning the trap itself, so that a hop costs no extra frame.
    """
    fiber = runs.current().fiber
    if fiber is not None:
        call.waiter = fiber
        call.on_reply = _wake_fiber
        immediate = post(call)
        # A fiber may be woken while it still runs (the answer is queued for it): it suspends anyway.
        return _answered(immediate) if immediate is not None else fibers.suspend()
    call.waiter = current_task()
    call.on_reply = _wake_task
    immediate = post(call)
    if immediate is not None:
        return _answered(immediate)
    return wait_task_rescheduled(call.abandon)


async def _answered(result: Any) -> Any:
    return result
