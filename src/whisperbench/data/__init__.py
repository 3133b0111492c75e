"""Evaluation data: LibriSpeech (downloaded or local) and an offline synthetic corpus."""
