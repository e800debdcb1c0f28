"""``mailsvc register``: the incoming register (sổ đăng ký văn bản đến).

list | show | set-status | refuse-recall | assign | export. A status change queues the
sender's status notice (mailsvc.notify.recall) in the same transaction. ``--json`` on
list and show prints the stable schema documented in docs/register.md (English
snake_case keys, stable codes).
Dates given on the command line are calendar days in the server's zone (+07:00).
"""

from __future__ import annotations

import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import click

from mailsvc import audit
from mailsvc.cli import Context
from mailsvc.cli.console import actor as default_actor
from mailsvc.cli.console import (
    display_zone,
    echo_json,
    echo_record,
    echo_table,
    json_option,
    open_session,
    parse_optional_day,
    progress,
)
from mailsvc.config import PACKAGED_TEMPLATES
from mailsvc.errors import MailsvcError
from mailsvc.notify.notices import NoticeComposer
from mailsvc.notify.recall import StatusNotifier
from mailsvc.outbound.models import VOID_COPY, OutboundMessage
from mailsvc.outbound.smime import SmimeSigner
from mailsvc.register import export, queries, workflow
from mailsvc.register.registers import get_register
from mailsvc.register.statuses import DocumentStatus, parse_status
from mailsvc.register.urgency import Urgency, parse_urgency
from mailsvc.time import vn_date, vn_datetime

pass_ctx = click.make_pass_decorator(Context)

OUTCOME_LABELS = {"valid": "Hợp lệ", "reference_only": "Tham khảo", "invalid": "Không hợp lệ"}

def _templates(ctx: Context) -> Path:
    s = ctx.settings
    return s.path(s.paths.templates) if s.paths.templates else PACKAGED_TEMPLATES


def _notifier(ctx: Context) -> StatusNotifier:
    """Queues the sender's status notices (the server's outbound worker sends them)."""
    s = ctx.settings
    composer = NoticeComposer(
        _templates(ctx) / "notices",
        hostname=s.server.hostname,
        domain=s.server.domain,
        smime=SmimeSigner.from_settings(s),
    )
    return StatusNotifier(composer)


def _queued_text(rows: list[OutboundMessage]) -> str:
    notices = [r for r in rows if r.kind.startswith("notice-")]
    voids = [r for r in rows if r.kind == VOID_COPY]
    parts = [f"{r.kind} to {r.recipient}" for r in notices]
    if voids:
        parts.append(f"{len(voids)} delivered copy(ies) to move to the recall folder")
    return f"; queued: {', '.join(parts)}" if parts else ""


def _filter_options(func: click.decorators.FC) -> click.decorators.FC:
    options = [
        click.option("--register", "register_code", help="Register code (default: all)."),
        click.option("--from", "since", metavar="YYYY-MM-DD", help="Received on or after."),
        click.option("--to", "until", metavar="YYYY-MM-DD", help="Received on or before."),
        click.option("--agency", help="Issuing agency: its code, or part of its name."),
        click.option(
            "--status",
            "statuses",
            multiple=True,
            help="Status code, Vietnamese code or label (repeatable), e.g. registered, da_den.",
        ),
        click.option(
            "--urgency",
            "urgencies",
            multiple=True,
            help="normal, urgent (Khẩn), very_urgent (Thượng khẩn), immediate (Hỏa tốc).",
        ),
        click.option("--overdue", is_flag=True, help="Open documents past their deadline."),
        click.option("--year", type=int, help="Register year."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _make_filter(
    register_code: str | None,
    since: str | None,
    until: str | None,
    agency: str | None,
    statuses: tuple[str, ...],
    urgencies: tuple[str, ...],
    overdue: bool,
    year: int | None,
    *,
    numbered_only: bool = False,
    limit: int | None = None,
) -> queries.DocumentFilter:
    start, end = parse_optional_day(since, "--from"), parse_optional_day(until, "--to")
    if start and end and start > end:
        raise MailsvcError("--from is after --to")
    return queries.DocumentFilter(
        register_code=register_code,
        since=start,
        until=end,
        agency=agency,
        statuses=tuple(parse_status(s) for s in statuses),
        urgencies=tuple(parse_urgency(u) for u in urgencies),
        overdue=overdue,
        numbered_only=numbered_only,
        year=year,
        limit=limit,
    )


@click.group("register")
def register_group() -> None:
    """Incoming register (sổ đăng ký văn bản đến): list, show, status, assignment, export."""


@register_group.command("list")
@_filter_options
@click.option("--limit", type=click.IntRange(1, 1_000_000), help="At most this many entries.")
@json_option
@pass_ctx
def list_cmd(
    ctx: Context,
    register_code: str | None,
    since: str | None,
    until: str | None,
    agency: str | None,
    statuses: tuple[str, ...],
    urgencies: tuple[str, ...],
    overdue: bool,
    year: int | None,
    limit: int | None,
    as_json: bool,
) -> None:
    """Entries in register order (numbered first, by number), filtered."""
    zone = display_zone(ctx)
    flt = _make_filter(
        register_code, since, until, agency, statuses, urgencies, overdue, year, limit=limit
    )
    today = queries.local_today(zone)
    with open_session(ctx) as session:
        views = [
            queries.document_view(d, zone, today)
            for d in queries.list_documents(session, flt, zone, today)
        ]
    if as_json:
        echo_json(views, ctx)
        return
    table = [
        {
            "number": f"{v['incoming_number']}/{v['year']}" if v["incoming_number"] else "-",
            "received": _vn_time(v["received_at"]),
            "agency": v["agency_name"] or v["agency_code"] or v["sender"],
            "notation": v["number_notation"],
            "abstract": _short(v["abstract"], 48),
            "urgency": "" if v["urgency"] == "normal" else v["urgency_label"],
            "signature": OUTCOME_LABELS.get(v["signature_outcome"], v["signature_outcome"]),
            "status": v["status_label"],
            "deadline": _vn_day(v["deadline"]) + (" !" if v["overdue"] else ""),
            "id": v["id"],
        }
        for v in views
    ]
    echo_table(
        table,
        (
            ("id", "ID"),
            ("number", "SỐ ĐẾN"),
            ("received", "NGÀY ĐẾN"),
            ("agency", "TÁC GIẢ"),
            ("notation", "SỐ, KÝ HIỆU"),
            ("abstract", "TRÍCH YẾU"),
            ("urgency", "ĐỘ KHẨN"),
            ("signature", "CHỮ KÝ SỐ"),
            ("status", "TRẠNG THÁI"),
            ("deadline", "HẠN XỬ LÝ"),
        ),
        ctx,
    )


@register_group.command("late")
@click.option("--register", "register_code", help="Only this register (code).")
@click.option("--from", "since", required=True, help="Received on or after this day (YYYY-MM-DD).")
@click.option("--to", "until", help="Received on or before this day (default: today).")
@json_option
@pass_ctx
def late_cmd(
    ctx: Context, register_code: str | None, since: str, until: str | None, as_json: bool
) -> None:
    """Entries registered later than the next working day after arrival (urgent ones: later
    than one hour), or still unregistered past that time (Decree 30 art. 22)."""
    from mailsvc.app import policies_dir
    from mailsvc.checks.policy import load_checking_policy
    from mailsvc.register.timeliness import late_registrations

    zone = display_zone(ctx)
    start = parse_optional_day(since, "--from")
    end = parse_optional_day(until, "--to") or queries.local_today(zone)
    assert start is not None
    if start > end:
        raise MailsvcError("--from is after --to")
    policy = load_checking_policy(policies_dir(ctx.settings) / "checking.yaml")
    with open_session(ctx) as session:
        ids = [get_register(session, register_code).id] if register_code else []
        late = late_registrations(
            session,
            policy,
            since=queries.start_of(start, zone),
            until=queries.start_of(end + timedelta(days=1), zone),
            now=datetime.now(UTC),
            register_ids=ids,
        )
    rows = [
        {
            "id": item.document_id,
            "register": item.register_code,
            "number": f"{item.incoming_number}/{item.year}" if item.incoming_number else "",
            "notation": item.number_notation,
            "sender": item.sender,
            "urgency": "" if item.urgency is Urgency.NORMAL else item.urgency.label,
            "received_at": item.received_at,
            "due": item.due,
            "registered_at": item.registered_at,
            "late_hours": round(item.late_by.total_seconds() / 3600, 1) if item.late_by else None,
        }
        for item in late
    ]
    if as_json:
        echo_json(rows, ctx)
        return
    click.echo(
        f"Văn bản đến vào sổ muộn (nhận từ {start.isoformat()} đến {end.isoformat()}): {len(rows)}"
    )
    for row in rows:
        if row["registered_at"] is None:
            row["registered_at"] = "chưa vào sổ"
    echo_table(
        rows,
        (
            ("id", "ID"),
            ("register", "SỔ"),
            ("number", "SỐ ĐẾN"),
            ("notation", "SỐ, KÝ HIỆU"),
            ("sender", "NƠI GỬI"),
            ("urgency", "ĐỘ KHẨN"),
            ("received_at", "NGÀY ĐẾN"),
            ("due", "HẠN VÀO SỔ"),
            ("registered_at", "NGÀY VÀO SỔ"),
            ("late_hours", "MUỘN (GIỜ)"),
        ),
        ctx,
    )


def _vn_time(value: str | None) -> str:
    """An ISO 8601 time from the view as the clerk reads it: HH:MM dd/mm/yyyy."""
    return vn_datetime(datetime.fromisoformat(value)) if value else ""


def _vn_day(value: str | None) -> str:
    return vn_date(date.fromisoformat(value)) if value else ""


def _short(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


@register_group.command("show")
@click.argument("ref")
@click.option("--register", "register_code", help="Register code, for NUMBER/YEAR references.")
@json_option
@pass_ctx
def show_cmd(ctx: Context, ref: str, register_code: str | None, as_json: bool) -> None:
    """One entry with its attachments and history. REF: an id, or NUMBER/YEAR (15/2026)."""
    zone = display_zone(ctx)
    with open_session(ctx) as session:
        view = queries.document_view(queries.find_document(session, ref, register_code), zone)
    if as_json:
        echo_json(view, ctx)
        return
    record = {k: v for k, v in view.items() if k not in ("attachments", "history", "deliveries")}
    record["status"] = f"{view['status']} ({view['status_label']})"
    record["urgency"] = f"{view['urgency']} ({view['urgency_label']})"
    del record["status_label"], record["urgency_label"]
    echo_record(record, ctx)
    click.echo("attachments:" + ("" if view["attachments"] else " (none)"))
    for a in view["attachments"]:
        click.echo(
            f"  [{a['role']}] {a['filename']} ({a['content_type']}, {a['size']} bytes, "
            f"sha256 {a['sha256'][:16]}…)"
        )
    click.echo("history:")
    for h in view["history"]:
        arrow = f"{h['from_status'] or '-'} -> {h['to_status']}"
        extra = f" to {h['assigned_to']}" if h["assigned_to"] else ""
        click.echo(f"  {h['at']}  {h['actor']}: {arrow}{extra}  {h['reason']}")


@register_group.command("set-status")
@click.argument("ref")
@click.argument("status")
@click.option(
    "--reason", default="", help="Why (required for registered, refused, recalled, deleted)."
)
@click.option("--actor", help="Who acts (default: the OS user, or MAILSVC_ACTOR).")
@click.option("--register", "register_code", help="Register code, for NUMBER/YEAR references.")
@json_option
@pass_ctx
def set_status_cmd(
    ctx: Context,
    ref: str,
    status: str,
    reason: str,
    actor: str | None,
    register_code: str | None,
    as_json: bool,
) -> None:
    """Change an entry's status: `set-status 15/2026 in_progress --reason "..."`.

    Transitions: arrived → registered | refused | recalled | deleted;
    registered → assigned | in_progress | done | refused | recalled | deleted;
    assigned → in_progress | done | refused | recalled (re-assign with `assign`);
    in_progress → assigned | done | recalled; done → in_progress | recalled;
    refused, recalled → deleted. Registering an unnumbered entry gives it a number.
    """
    zone = display_zone(ctx)
    target = parse_status(status)
    notifier = _notifier(ctx)
    with open_session(ctx) as session:
        document = queries.find_document(session, ref, register_code)
        before = DocumentStatus(document.status)
        workflow.set_status(
            session, document, target, actor=actor or default_actor(), reason=reason, zone=zone
        )
        queued = notifier.status_changed(session, document, before, target, reason)
        session.commit()
        view = queries.document_view(document, zone)
    if as_json:
        echo_json(view, ctx)
        return
    number = f" số đến {view['incoming_number']}/{view['year']}" if view["incoming_number"] else ""
    click.echo(
        f"document {view['id']}{number}: {before.value} -> {target.value} ({target.label})"
        + _queued_text(queued)
    )


@register_group.command("refuse-recall")
@click.argument("ref")
@click.option("--reason", required=True, help="Why the document is not recalled (sent back).")
@click.option(
    "--admin-override",
    is_flag=True,
    help="Required: voiding a recalled copy is the receiver's duty, refusing is an "
    "administrator's override (audited).",
)
@click.option("--actor", help="Who acts (default: the OS user, or MAILSVC_ACTOR).")
@click.option("--register", "register_code", help="Register code, for NUMBER/YEAR references.")
@json_option
@pass_ctx
def refuse_recall_cmd(
    ctx: Context,
    ref: str,
    reason: str,
    admin_override: bool,
    actor: str | None,
    register_code: str | None,
    as_json: bool,
) -> None:
    """Administrator's override: refuse the sender's recall request. The entry returns to
    its earlier status and the sender is told (status 16). Only for a request still
    waiting (``[outgoing] recall_requests = "clerk"``); by default recalls are carried out
    at once. To accept a waiting one: `set-status REF recalled --reason ...`."""
    if not admin_override:
        raise MailsvcError(
            "refusing a recall is an administrator's override (the receiver must void a "
            "recalled copy): repeat with --admin-override"
        )
    zone = display_zone(ctx)
    notifier = _notifier(ctx)
    with open_session(ctx) as session:
        document = queries.find_document(session, ref, register_code)
        who = actor or default_actor()
        workflow.refuse_recall(session, document, actor=who, reason=reason)
        audit.record(
            session,
            who,
            "register.recall-override",
            f"document {document.id}",
            {"message_id": document.message_id, "reason": reason},
        )
        queued = notifier.recall_refused(session, document, reason)
        session.commit()
        view = queries.document_view(document, zone)
    if as_json:
        echo_json(view, ctx)
        return
    status = DocumentStatus(view["status"])
    click.echo(
        f"document {view['id']}: recall refused, back to {status.value} ({status.label})"
        + _queued_text(queued)
    )


@register_group.command("assign")
@click.argument("ref")
@click.option("--to", "assignee", required=True, help="Unit or person who handles it.")
@click.option("--deadline", metavar="YYYY-MM-DD", help="Processing deadline (hạn xử lý).")
@click.option("--reason", default="", help="Instruction or why.")
@click.option("--actor", help="Who acts (default: the OS user, or MAILSVC_ACTOR).")
@click.option("--register", "register_code", help="Register code, for NUMBER/YEAR references.")
@json_option
@pass_ctx
def assign_cmd(
    ctx: Context,
    ref: str,
    assignee: str,
    deadline: str | None,
    reason: str,
    actor: str | None,
    register_code: str | None,
    as_json: bool,
) -> None:
    """Hand an entry to a unit or person (đã chuyển xử lý)."""
    zone = display_zone(ctx)
    due = parse_optional_day(deadline, "--deadline")
    notifier = _notifier(ctx)
    with open_session(ctx) as session:
        document = queries.find_document(session, ref, register_code)
        before = DocumentStatus(document.status)
        workflow.assign(
            session,
            document,
            assignee,
            actor=actor or default_actor(),
            reason=reason,
            deadline=due,
        )
        notifier.status_changed(session, document, before, DocumentStatus.ASSIGNED)
        session.commit()
        view = queries.document_view(document, zone)
    if as_json:
        echo_json(view, ctx)
        return
    due_text = f", deadline {view['deadline']}" if view["deadline"] else ""
    click.echo(f"document {view['id']}: assigned to {view['assigned_to']}{due_text}")


@register_group.command("export")
@_filter_options
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["csv", "html", "pdf"]),
    default="csv",
    show_default=True,
)
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    help="File to write (default: standard output).",
)
@click.option(
    "--all",
    "include_unnumbered",
    is_flag=True,
    help="Include entries without a number (reference-only, refused).",
)
@pass_ctx
def export_cmd(
    ctx: Context,
    register_code: str | None,
    since: str | None,
    until: str | None,
    agency: str | None,
    statuses: tuple[str, ...],
    urgencies: tuple[str, ...],
    overdue: bool,
    year: int | None,
    fmt: str,
    output: Path | None,
    include_unnumbered: bool,
) -> None:
    """The register in the official columns: CSV (Excel), printable HTML or PDF."""
    zone = display_zone(ctx)
    flt = _make_filter(
        register_code,
        since,
        until,
        agency,
        statuses,
        urgencies,
        overdue,
        year,
        numbered_only=not include_unnumbered,
    )
    with open_session(ctx) as session:
        documents = queries.list_documents(session, flt, zone)
        rows = []
        with progress(len(documents), "export") as advance:
            for document in documents:
                rows.append(export.row_of(document, zone))
                advance(1)
        if register_code:
            register = get_register(session, register_code)
            register_name = register.name
        else:
            names = sorted({d.register.name for d in documents})
            register_name = names[0] if len(names) == 1 else "Sổ đăng ký văn bản đến"
    agency_name = register_name.partition(" - ")[2]
    title = export.RegisterTitle.make(
        agency_name,
        register_name.partition(" - ")[0],
        flt.since,
        flt.until,
        zone,
        datetime.now(zone),
    )
    if fmt == "csv":
        data = export.to_csv(rows)
    elif fmt == "html":
        data = export.render_html(rows, title, _templates(ctx)).encode("utf-8")
    else:
        data = export.render_pdf(rows, title)
    if output is None:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
        return
    output.write_bytes(data)
    click.echo(f"wrote {len(rows)} entries to {output} ({fmt}, {len(data)} bytes)", err=True)


def register(group: click.Group) -> None:
    group.add_command(register_group)
