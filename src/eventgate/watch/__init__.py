"""`eventgate watch`: green after the switch, sampled and judged (docs/architecture.md)."""
