"""MailsvcError and its few subclasses."""

import errno


class MailsvcError(Exception):
    """A known failure with a message fit for an administrator."""


class ConfigError(MailsvcError):
    """The configuration or a policy file is invalid."""


class NotFoundError(MailsvcError):
    """A named object (mailbox, agency, document) does not exist."""


class ConflictError(MailsvcError):
    """The object already exists or the change would break a rule."""


class DependencyError(MailsvcError):
    """A daemon or service we rely on (clamd, Dovecot, DNS) is unavailable."""


class StorageFullError(MailsvcError):
    """Not enough disk space for a message (answered ``452 4.3.1``)."""


def is_storage_full(error: BaseException) -> bool:
    """True for ENOSPC/EDQUOT anywhere in ``error``'s chain (SQLite says "disk is full")."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, StorageFullError):
            return True
        if isinstance(seen, OSError) and seen.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if "database or disk is full" in str(seen):
            return True
        seen = seen.__cause__ or seen.__context__
    return False
