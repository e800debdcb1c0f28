"""mailsvc: secure official-document mail service for Vietnamese public bodies."""

__version__ = "0.1.0"
