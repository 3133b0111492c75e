"""Whisper model ids, where their weights come from, and conversion to one HF layout."""
