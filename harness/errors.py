"""Errors the CLI turns into one clear line and a non-zero exit."""


class HarnessError(Exception):
    """A problem the user can fix (bad input, missing resource). Exit code 2."""

    exit_code = 2


class UsageError(HarnessError):
    """Bad command-line input."""


class ResourceError(HarnessError):
    """Not enough RAM or disk, unwritable directory, missing GPU or tool."""
