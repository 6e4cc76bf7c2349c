"""Outputs of a run: the JSON report and its summary, PNG plots, the progress bar."""
