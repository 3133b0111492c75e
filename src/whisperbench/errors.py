"""User-facing errors: one line naming the thing that is wrong and the fix, no traceback."""

from __future__ import annotations

import functools
import sys


class UserError(Exception):
    """A mistake the user can fix (bad param, missing file, no network); printed as one line."""


def cli(main):
    """Wrap a script's main() so a UserError prints one line and exits 2 instead of a traceback."""

    @functools.wraps(main)
    def wrapper(*args, **kwargs):
        try:
            return main(*args, **kwargs)
        except UserError as error:
            print(f"whisperbench: error: {error}", file=sys.stderr)
            raise SystemExit(2) from None

    return wrapper
