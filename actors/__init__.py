"""The actors: a bounded-mailbox base, one actor per service environment, routers, a supervisor."""
