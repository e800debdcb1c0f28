"""``mailsvc trust add | list | remove``: trust anchors for signature verification, and
``mailsvc trust crl add | list | remove``: CRL sources (URLs or files) for revocation.

Managed anchors live in HOME/trust/ (one PEM file per certificate, named by fingerprint);
anchors in policies/trust/ are listed but read-only here. Changes are audited and seen by
the running service at the next message (the material version changes).
"""

from __future__ import annotations

from pathlib import Path

import click

from mailsvc import audit
from mailsvc.cli import Context
from mailsvc.cli.console import actor, echo_json, echo_table, json_option, open_session
from mailsvc.signatures.sources import (
    add_crl_source,
    managed_crl_sources,
    normalise,
    remove_crl_source,
)
from mailsvc.signatures.trust import TrustStore

pass_ctx = click.make_pass_decorator(Context)


def trust_store(ctx: Context) -> TrustStore:
    from mailsvc.cli.verify import policies_path

    return TrustStore(ctx.home / "trust", readonly_dirs=(policies_path(ctx) / "trust",))


@click.group("trust")
def trust_group() -> None:
    """Trusted root certificates for digital signatures (chứng thư số gốc tin cậy)."""


@trust_group.command("add")
@click.argument(
    "files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
@json_option
@pass_ctx
def add_cmd(ctx: Context, files: tuple[Path, ...], as_json: bool) -> None:
    """Trust the CA certificate(s) in FILES (PEM or DER)."""
    store = trust_store(ctx)
    added = []
    with open_session(ctx) as session:
        for path in files:
            for anchor in store.add(path.read_bytes(), str(path)):
                audit.record(
                    session,
                    actor(),
                    "trust.add",
                    anchor.fingerprint,
                    {
                        "subject": anchor.subject,
                        "not_after": anchor.not_after.isoformat(),
                        "file": str(path),
                    },
                )
                added.append(anchor)
        session.commit()
    if as_json:
        echo_json([a.to_dict() for a in added], ctx)
        return
    for a in added:
        click.echo(f"trusted {a.fingerprint[:16]}  {a.subject}")


@trust_group.command("list")
@json_option
@pass_ctx
def list_cmd(ctx: Context, as_json: bool) -> None:
    """List trust anchors (managed ones and those in policies/trust)."""
    anchors = trust_store(ctx).anchors()
    if as_json:
        echo_json([a.to_dict() for a in anchors], ctx)
        return
    rows = [
        {
            "fingerprint": a.fingerprint[:16],
            "subject": a.subject,
            "not_after": a.not_after,
            "ca": a.is_ca,
            "source": "HOME/trust" if a.managed else "policies/trust",
        }
        for a in anchors
    ]
    echo_table(
        rows,
        (
            ("fingerprint", "FINGERPRINT"),
            ("subject", "SUBJECT"),
            ("not_after", "VALID UNTIL"),
            ("ca", "CA"),
            ("source", "SOURCE"),
        ),
        ctx,
    )


@trust_group.command("remove")
@click.argument("fingerprint")
@json_option
@pass_ctx
def remove_cmd(ctx: Context, fingerprint: str, as_json: bool) -> None:
    """Stop trusting the managed anchor whose SHA-256 FINGERPRINT starts with the given hex."""
    store = trust_store(ctx)
    with open_session(ctx) as session:
        anchor = store.remove(fingerprint)
        audit.record(
            session, actor(), "trust.remove", anchor.fingerprint, {"subject": anchor.subject}
        )
        session.commit()
    if as_json:
        echo_json(anchor.to_dict(), ctx)
        return
    click.echo(f"removed {anchor.fingerprint[:16]}  {anchor.subject}")


@trust_group.group("crl")
def crl_group() -> None:
    """CRL sources: URLs fetched (or files copied) by the crl-refresh job into HOME/crl."""


@crl_group.command("add")
@click.argument("source")
@json_option
@pass_ctx
def crl_add_cmd(ctx: Context, source: str, as_json: bool) -> None:
    """Add a CRL SOURCE: an http(s) URL or a CRL file (PEM or DER). The next crl-refresh
    run (at start-up, then every crl_refresh_minutes, or `mailsvc jobs run crl-refresh`)
    fetches it."""
    value = normalise(source, Path.cwd())
    with open_session(ctx) as session:
        added = add_crl_source(ctx.home, value)
        if added:
            audit.record(session, actor(), "trust.crl.add", value, {})
            session.commit()
    if as_json:
        echo_json({"source": value, "added": added}, ctx)
        return
    click.echo(f"{'added' if added else 'already listed'}: {value}")


@crl_group.command("list")
@json_option
@pass_ctx
def crl_list_cmd(ctx: Context, as_json: bool) -> None:
    """List CRL sources: managed here, and those in policies/signature.yaml (read-only)."""
    from mailsvc.cli.verify import load_policy

    rows = [{"source": s, "origin": "policy"} for s in load_policy(ctx, None).crl_sources]
    rows += [{"source": s, "origin": "HOME/trust"} for s in managed_crl_sources(ctx.home)]
    if as_json:
        echo_json(rows, ctx)
        return
    echo_table(rows, (("source", "SOURCE"), ("origin", "FROM")), ctx)


@crl_group.command("remove")
@click.argument("source")
@json_option
@pass_ctx
def crl_remove_cmd(ctx: Context, source: str, as_json: bool) -> None:
    """Remove a managed CRL SOURCE (as listed). The cached CRL stays until it expires."""
    with open_session(ctx) as session:
        removed = remove_crl_source(ctx.home, source)
        audit.record(session, actor(), "trust.crl.remove", removed, {})
        session.commit()
    if as_json:
        echo_json({"source": removed, "removed": True}, ctx)
        return
    click.echo(f"removed: {removed}")


def register(group: click.Group) -> None:
    group.add_command(trust_group)
