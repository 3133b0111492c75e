"""Aggregation of per-cell metrics into tables and plots (reads only result files)."""
