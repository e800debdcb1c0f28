"""MailsvcError and its few subclasses."""


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
