"""Measurement: histograms and the recorders actors write to, the Prometheus exposition read at
scrape time, series over a run, OpenMetrics export."""
