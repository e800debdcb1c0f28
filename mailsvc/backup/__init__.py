"""Backups: one consistent archive of a mailsvc home, and its verified restore.

``archive.py`` writes archives (``mailsvc backup``, the daily ``backup_job``),
``snapshot.py`` takes the database snapshot that defines what "consistent" means,
``manifest.py`` is the archive's table of contents and ``restore.py`` puts it back.
"""
