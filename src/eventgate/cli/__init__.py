"""The `eventgate` command: one module per verb group, the parser and dispatch in main."""

from eventgate.cli.main import main

__all__ = ["main"]
