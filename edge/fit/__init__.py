"""``edge fit``: a scenario's model and arrivals fitted to what a real service logged or Prometheus recorded."""
