"""Is a restored state exactly what was saved? The manifest of fingerprints written at
save time (manifest.py), the one pure judge over fingerprints (core.py), and its use on a
live adapter after a restore (restore.py)."""

from .core import error_summary, judge, name_list

__all__ = ["error_summary", "judge", "name_list"]
