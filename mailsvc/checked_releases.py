"""Whether the libraries a speed-up module replaces functions of are the releases it was
checked against (``mailsvc.signatures.speedups``, ``mailsvc.pipeline.dkim_speedups``,
``mailsvc.outbound.smtp_speedups``): any other release keeps its own functions."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from importlib.metadata import version


def releases_checked(checked: Mapping[str, frozenset[str]], log: logging.Logger) -> bool:
    """True when every library named in ``checked`` is one of its checked releases; else
    logs the releases found (at INFO) and returns False."""
    releases = {name: version(name) for name in checked}
    if any(release not in checked[name] for name, release in releases.items()):
        log.info("%s: the libraries' own functions are used (not checked)", releases)
        return False
    return True
