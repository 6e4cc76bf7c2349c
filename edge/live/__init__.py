"""Live mode: the h11 ingress, serving a topology in real time, the admin API, the load generator."""
