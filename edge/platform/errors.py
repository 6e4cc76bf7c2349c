"""Answers the platform itself gives, in Cloudflare's style: ``error code: NNNN`` bodies.

Each carries an ``x-edge-error`` header naming the cause, so that a client (and the run's counters)
can tell a shed or a CPU-limit failure from a 5xx the worker returned on purpose.
"""

from __future__ import annotations

from edge.platform.fetch import Response

ERROR_HEADER = "x-edge-error"

WORKER_EXCEPTION = (500, 1101, "exception")
"""Worker threw exception."""
INVALID_RESPONSE = (500, 1101, "invalid-response")
"""The worker's answer cannot be sent as HTTP/1.1 (a header or reason phrase outside Latin-1): as
workerd, where such a header is a TypeError thrown in the worker, it is error 1101."""
CPU_LIMIT = (503, 1102, "cpu-limit")
"""Worker exceeded resource limits (its request's CPU budget)."""
STALLED = (503, 1102, "stalled")
"""Worker exceeded resource limits: one step held the event loop past the step wall-time limit
(``time.sleep``, blocking I/O; in virtual time, any real work) and the watchdog interrupted it."""
SHED = (503, 1200, "shed")
"""Too many requests queued for the worker: its mailbox was full."""
NOT_FOUND = (404, 1000, "not-found")
"""No public route for this host and path (private services have none)."""
UNKNOWN_ENVIRONMENT = (400, None, "unknown-environment")
"""The split's override header named no environment of the service: refused, never served by
another environment (the caller asked for that one by name)."""
CLIENT_CLOSED = (499, None, "client-closed")
"""The client went away before the answer (nginx's 499; Cloudflare has no error code for it)."""
WALL_LIMIT = (504, None, "wall-limit")
"""The top-level request was not answered within the scenario's ``request_limit`` (off unless set)."""
UNAVAILABLE = (503, None, "unavailable")
"""The environment is down (a timeline crash) and refuses calls until it restarts."""


def platform_error(kind: tuple[int, int | None, str]) -> Response:
    """The platform's answer for ``kind``: ``error code: NNNN``, or the cause for those without one."""
    status, code, cause = kind
    body = f"error code: {code}" if code is not None else cause.replace("-", " ")
    return Response(body, status=status, headers={ERROR_HEADER: cause})
