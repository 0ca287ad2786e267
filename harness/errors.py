"""Errors the CLI turns into one clear line and a non-zero exit."""


class HarnessError(Exception):
    """A problem the user can fix (bad input, missing resource). Exit code 2."""

    exit_code = 2


class UsageError(HarnessError):
    """Bad command-line input."""


class ResourceError(HarnessError):
    """Not enough RAM or disk, unwritable directory, missing GPU or tool."""


def finish_command(results: str, status: str, failures: list[str], interrupted: str, prefix: str = "") -> int:
    """The end of every measuring command: where its results are, then its exit code.

    130 when interrupted (the note says what was kept or killed), else 1 with one stderr line
    per failure, else 0. A verdict that is not complete is a failure, so it always lands here."""
    import sys

    print(f"results: {results}")
    if status == "interrupted":
        print(f"ckpt-harness: interrupted; {interrupted}", file=sys.stderr)
        return 130
    for f in failures:
        print(f"ckpt-harness: {prefix}{f}", file=sys.stderr)
    return 1 if failures else 0
