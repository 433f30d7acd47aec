"""Sizes as a person reads them, one way everywhere eventgate prints them."""

from __future__ import annotations


def human_bytes(n: float) -> str:
    """Bytes in powers of 1024 with pg_size_pretty's units (B, kB, MB, ...), so eventgate's
    figures read like the server's own."""
    for unit in ("B", "kB", "MB", "GB", "TB", "PB"):
        if abs(n) < 1024:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} EB"
