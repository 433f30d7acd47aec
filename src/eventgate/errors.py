"""The one family of errors a user of eventgate sees: each says what failed, what was checked
and how to fix it."""


class EventgateError(Exception):
    """A failure the user can act on; the CLI prints it as `FAILED: <message>`."""


class ConfigError(EventgateError):
    """A setting (DSN, bundle path, scale) is malformed or points nowhere."""


class ProvisioningError(EventgateError):
    """No PostgreSQL server could be reached or started."""


class BundleError(EventgateError):
    """A migration bundle on disk is incomplete or inconsistent."""


class MigrationError(EventgateError):
    """A migration, a rollback or a ledger check failed."""


class BackupError(EventgateError):
    """A backup, its verification, or a restore from it failed or was refused."""
