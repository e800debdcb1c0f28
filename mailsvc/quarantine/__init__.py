"""Quarantine records of refused, infected messages and outbreak detection.

The message itself is never kept: only its hash and envelope, for investigation.
"""
