"""Scoring (WER), timing aggregation and provenance."""
