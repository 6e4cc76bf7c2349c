"""Where the admin API listens and where its token is read from, by default: the CLI's options
name them for every command, so they live apart from the admin API (``edge.live.admin``), which
imports the actors, trio and the rest of live serving."""

from __future__ import annotations

DEFAULT_ADMIN_PORT = 8788
TOKEN_ENV = "EDGE_ADMIN_TOKEN"
