"""``mailsvc outgoing``: the outgoing register (sổ văn bản đi): what our officials sent to
other agencies, each recipient's delivery line (queued → sent → 01 → 03 ...), history,
export in the official columns; recall (thu hồi) and the clerk's approval of documents
issued with the organisation's signature."""

from __future__ import annotations

import asyncio
import sys
from datetime import datetime, timedelta
from pathlib import Path

import click

from mailsvc.cli import Context
from mailsvc.cli.console import (
    actor,
    display_zone,
    echo_json,
    echo_record,
    echo_table,
    json_option,
    open_session,
    parse_optional_day,
)
from mailsvc.cli.verify import build_engine, load_policy, quiet_pyhanko
from mailsvc.notify.notices import NoticeComposer
from mailsvc.outbound.smime import SmimeSigner
from mailsvc.outgoing import export
from mailsvc.outgoing import register as outgoing
from mailsvc.outgoing.issuing import approve, issuing_agency, organisation_signer
from mailsvc.outgoing.recall import recall_document
from mailsvc.register import export as register_export
from mailsvc.signatures.report import DocumentSignatureReport
from mailsvc.store.blobs import BlobStore

pass_ctx = click.make_pass_decorator(Context)


@click.group("outgoing")
def outgoing_group() -> None:
    """Outgoing register (sổ văn bản đi): list, show, export, recall, approve."""


def _unanswered(ctx: Context) -> timedelta:
    return timedelta(hours=ctx.settings.outgoing.unanswered_hours)


def _filter(
    ctx: Context,
    since: str | None,
    until: str | None,
    year: int | None,
    unanswered: bool,
    state: str | None,
    limit: int | None = None,
) -> outgoing.OutgoingFilter:
    return outgoing.OutgoingFilter(
        since=parse_optional_day(since, "--since"),
        until=parse_optional_day(until, "--until"),
        year=year,
        unanswered_after=_unanswered(ctx) if unanswered else None,
        state=state,
        limit=limit,
    )


def _filter_options(func: click.decorators.FC) -> click.decorators.FC:
    for option in reversed(
        (
            click.option("--since", help="From this local date (YYYY-MM-DD), inclusive."),
            click.option("--until", help="Up to this local date (YYYY-MM-DD), inclusive."),
            click.option("--year", type=int, help="Register year."),
            click.option(
                "--unanswered",
                is_flag=True,
                help="Only documents some recipient has not answered (no receipt) for "
                "outgoing.unanswered_hours.",
            ),
            click.option(
                "--state",
                type=click.Choice(["draft", "sent", "recall_requested", "recalled"]),
                help="Only documents in this state.",
            ),
        )
    ):
        func = option(func)
    return func


@outgoing_group.command("list")
@_filter_options
@click.option("--limit", type=click.IntRange(1, 1_000_000))
@json_option
@pass_ctx
def list_cmd(
    ctx: Context,
    since: str | None,
    until: str | None,
    year: int | None,
    unanswered: bool,
    state: str | None,
    limit: int | None,
    as_json: bool,
) -> None:
    """Entries in the order they were sent, each with its recipients' statuses."""
    zone = display_zone(ctx)
    flt = _filter(ctx, since, until, year, unanswered, state, limit)
    with open_session(ctx) as session:
        views = [
            outgoing.document_view(d, zone, unanswered_after=_unanswered(ctx))
            for d in outgoing.list_documents(session, flt, zone)
        ]
    if as_json:
        echo_json(views, ctx)
        return
    table = [
        {
            "id": v["id"],
            "number": f"{v['outgoing_number']}/{v['year']}" if v["outgoing_number"] else "-",
            "sent": v["sent_at"] or v["created_at"],
            "notation": v["number_notation"],
            "abstract": _short(v["abstract"], 40),
            "recipients": ", ".join(
                f"{d['agency_code'] or d['recipient']}: {d['status_label']}"
                + (" !" if d["unanswered"] else "")
                for d in v["deliveries"]
            ),
            "state": v["state"],
        }
        for v in views
    ]
    echo_table(
        table,
        (
            ("id", "ID"),
            ("number", "SỐ ĐI"),
            ("sent", "NGÀY GỬI"),
            ("notation", "SỐ, KÝ HIỆU"),
            ("abstract", "TRÍCH YẾU"),
            ("recipients", "NƠI NHẬN: TÌNH TRẠNG"),
            ("state", "STATE"),
        ),
        ctx,
    )


def _short(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


@outgoing_group.command("show")
@click.argument("ref")
@json_option
@pass_ctx
def show_cmd(ctx: Context, ref: str, as_json: bool) -> None:
    """One entry with its delivery lines and history. REF: an id, or NUMBER/YEAR."""
    zone = display_zone(ctx)
    with open_session(ctx) as session:
        view = outgoing.document_view(
            outgoing.find_document(session, ref), zone, unanswered_after=_unanswered(ctx)
        )
    if as_json:
        echo_json(view, ctx)
        return
    echo_record({k: v for k, v in view.items() if k not in ("deliveries", "history")}, ctx)
    click.echo("deliveries:")
    for d in view["deliveries"]:
        agency = f" ({d['agency_code']} {d['agency_name']})" if d["agency_code"] else ""
        number = f", their number {d['their_number']}" if d["their_number"] else ""
        late = " [unanswered]" if d["unanswered"] else ""
        click.echo(f"  {d['recipient']}{agency}: {d['status']} ({d['status_label']}){number}{late}")
    click.echo("history:")
    for h in view["history"]:
        who = h["recipient"] or "(document)"
        arrow = f"{h['from_status'] or '-'} -> {h['to_status']}"
        click.echo(f"  {h['at']}  {h['actor']}: {who}: {arrow}  {h['note']}")


@outgoing_group.command("export")
@_filter_options
@click.option(
    "--format", "fmt", type=click.Choice(["csv", "html", "pdf"]), default="csv", show_default=True
)
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    help="File to write (default: standard output).",
)
@pass_ctx
def export_cmd(
    ctx: Context,
    since: str | None,
    until: str | None,
    year: int | None,
    unanswered: bool,
    state: str | None,
    fmt: str,
    output: Path | None,
) -> None:
    """The outgoing register in the official columns: CSV (Excel), printable HTML or PDF."""
    from mailsvc.app import templates_dir

    zone = display_zone(ctx)
    flt = _filter(ctx, since, until, year, unanswered, state)
    with open_session(ctx) as session:
        rows = export.rows_of(outgoing.list_documents(session, flt, zone))
    title = register_export.RegisterTitle.make(
        "", "Sổ văn bản đi", flt.since, flt.until, zone, datetime.now(zone)
    )
    if fmt == "csv":
        data = register_export.to_csv(rows, export.HEADINGS)
    elif fmt == "html":
        data = register_export.render_html(
            rows, title, templates_dir(ctx.settings), export.HEADINGS
        ).encode("utf-8")
    else:
        data = register_export.render_pdf(
            rows, title, headings=export.HEADINGS, widths=export.PDF_WIDTHS
        )
    if output is None:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
        return
    output.write_bytes(data)
    click.echo(f"wrote {len(rows)} entries to {output} ({fmt}, {len(data)} bytes)", err=True)


@outgoing_group.command("recall")
@click.argument("ref")
@click.option("--reason", required=True, help="Why the document is recalled (sent along).")
@json_option
@pass_ctx
def recall_cmd(ctx: Context, ref: str, reason: str, as_json: bool) -> None:
    """Recall a sent document (thu hồi): status 13 to every recipient; each line then
    shows recalled (15) or recall_refused (16) as their answers come back."""
    from mailsvc.app import templates_dir

    s = ctx.settings
    composer = NoticeComposer(
        templates_dir(s) / "notices",
        hostname=s.server.hostname,
        domain=s.server.domain,
        smime=SmimeSigner.from_settings(s),
    )
    zone = display_zone(ctx)
    with open_session(ctx) as session:
        document = outgoing.find_document(session, ref)
        rows = recall_document(session, document, composer=composer, actor=actor(), reason=reason)
        session.commit()
        view = outgoing.document_view(document, zone)
    if as_json:
        echo_json(view, ctx)
        return
    sent = ", ".join(r.recipient for r in rows) or "nobody (nothing had left the queue)"
    click.echo(f"outgoing {view['id']}: {view['state']}; recall (13) queued to {sent}")


@outgoing_group.command("approve")
@click.argument("ref")
@json_option
@pass_ctx
def approve_cmd(ctx: Context, ref: str, as_json: bool) -> None:
    """Issue a draft sent to the dispatch address (phát hành): the next outgoing number,
    number and date stamped on the PDF, the organisation's signature from the token, the
    register entry and the mail to every recipient (sent by the running server)."""
    s = ctx.settings
    blobs = BlobStore(s.path(s.paths.blob_root))
    zone = display_zone(ctx)
    quiet_pyhanko(ctx)
    engine = build_engine(ctx, load_policy(ctx, None), ())

    def verify(name: str, data: bytes) -> list[DocumentSignatureReport]:
        return asyncio.run(engine.verify_files([(name, data)]))

    with organisation_signer(s) as signer, open_session(ctx) as session:
        document = outgoing.find_document(session, ref)
        rows = approve(
            session,
            document,
            settings=s,
            blobs=blobs,
            signer=signer,
            actor=actor(),
            agency=issuing_agency(session, s),
            verify=verify,
        )
        session.commit()
        view = outgoing.document_view(document, zone)
    if as_json:
        echo_json(view, ctx)
        return
    click.echo(
        f"outgoing {view['id']}: issued as số {view['outgoing_number']}/{view['year']}, "
        f"queued to {', '.join(r.recipient for r in rows)}"
    )


def register(group: click.Group) -> None:
    group.add_command(outgoing_group)
