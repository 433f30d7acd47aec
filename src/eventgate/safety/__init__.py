"""The safety net around a migration: preflight checks, verified backups and restores."""
