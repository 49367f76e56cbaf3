"""Metrics, BEFORE baselines, paired-bootstrap comparison, and the run report."""
