"""edge: a trio actor runtime that simulates an edge platform in the style of Cloudflare Workers.

Layers, imported one way only (each may import those before it, never those after; the tests
enforce it with import-linter, see ``.importlinter``):

``edge.platform``   the fetch API, units, distributions, routes, errors, clock, CPU, worker loading
``edge.scenario``   the scenario schema, its checks, arrival-rate profiles, thresholds
``edge.metrics``    histograms, recorders, Prometheus exposition, series, OpenMetrics
``actors``          mailboxes, one actor per service environment, routers, the supervisor
``edge.engine``     a scenario assembled into actors, traffic, the timeline, rollouts, the run
``edge.live`` · ``edge.report`` · ``edge.tune``   real-time serving; reports and plots; tuning
``edge.cli``        the command
"""
