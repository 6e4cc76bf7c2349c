"""The access log of the README's `edge fit` example, drawn from a known model so that a fit can be
checked against the truth: 5 minutes of nginx's log at 500 req/s (Poisson), 90% GET / and 10% POST
/api/orders, request times lognormal(p50=2ms, p99=15ms) logged to the millisecond as nginx logs
them, 0.1% answered 503, bodies exp(1 KiB). The same file on every run (seeded).

    python scenarios/fit/make_access_log.py access.log
"""

from __future__ import annotations

import datetime
import math
import sys

import numpy as np

Z_99 = 2.3263478740408408  # the standard normal's 0.99-quantile


def main(path: str) -> None:
    rng = np.random.default_rng(29)
    n = 150_000
    arrivals = np.cumsum(rng.exponential(1 / 500, n))
    sigma = math.log(15 / 2) / Z_99
    times = np.exp(math.log(0.002) + sigma * rng.standard_normal(n))
    start = datetime.datetime(2024, 5, 1, 12, 0, 0, tzinfo=datetime.timezone.utc)
    with open(path, "w") as out:
        for at, took in zip(arrivals, times):
            ended = start + datetime.timedelta(seconds=float(at + took))  # nginx stamps a line when its request ends
            request = "POST /api/orders HTTP/1.1" if rng.random() < 0.1 else "GET / HTTP/1.1"
            status = 503 if rng.random() < 0.001 else 200
            size = int(rng.exponential(1024))
            client = f"10.0.{int(at) % 250}.{int(at * 7) % 250}"
            out.write(f'{client} - - [{ended:%d/%b/%Y:%H:%M:%S +0000}] "{request}" {status} {size} {took:.3f}\n')


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "access.log")
