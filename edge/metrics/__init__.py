"""Measurement in parts: ``histogram`` (log-linear bins), ``recorders`` (what actors write to),
``families`` (every exported metric declared once, as data), ``exposition`` (the Prometheus
families built from both at scrape time), ``series`` over a run, ``openmetrics`` export."""
