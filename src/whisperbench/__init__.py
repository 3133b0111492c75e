"""whisperbench: size / accuracy / speed trade-offs of Whisper across runtimes and precisions."""

__version__ = "0.1.0"
