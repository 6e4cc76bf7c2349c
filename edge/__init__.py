"""edge: a trio actor runtime that simulates an edge platform in the style of Cloudflare Workers.

The ``edge`` package holds the platform primitives (fetch API, config, clock, CPU, metrics) and, on
top of the ``actors`` package, the shell that assembles and runs a scenario (runtime, traffic,
report, CLI). Imports go one way only: primitives <- actors <- shell.
"""
