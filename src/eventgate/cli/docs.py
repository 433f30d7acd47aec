"""`eventgate docs`: docs/schema.md, both schemas and the column mapping, written from the
bundle."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from eventgate.cli.common import given_bundle
from eventgate.cli.console import console
from eventgate.reports.schema_docs import render


def configure_docs(p: argparse.ArgumentParser) -> None:
    p.add_argument("--output", default="-", help="file to write (default: standard output)")


def cmd_docs(args: argparse.Namespace) -> int:
    """Write docs/schema.md (both schemas and the column mapping) from the bundle."""
    text = render(given_bundle(args))
    if args.output == "-":
        sys.stdout.write(text)
    else:
        Path(args.output).write_text(text, encoding="utf-8")
        console.print(f"wrote {args.output}")
    return 0
