"""Runtimes that run Whisper. Each is one module plus one entry in `registry.BACKENDS`."""
