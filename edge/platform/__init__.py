"""Platform primitives: what a worker and the runtime are made of (fetch API, units, distributions,
routes, errors, time, CPU, loading worker code, writing output files). Imports nothing else of edge."""
