"""``mailsvc verify FILE...``: the signature engine offline, for the clerk and the admin.

Files are PDFs, detached pairs (x.pdf with x.pdf.p7s / .sig / .asc given together),
enveloping x.pdf.p7m, or whole messages (.eml). Exit status: 0 when no document is
invalid, 2 when one is (1 for errors).
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from dataclasses import replace
from pathlib import Path

import click

from mailsvc.cli import Context
from mailsvc.cli.console import display_zone, show_time
from mailsvc.config import PACKAGED_POLICIES
from mailsvc.errors import MailsvcError
from mailsvc.signatures.engine import SignatureEngine, home_gnupg, trust_config
from mailsvc.signatures.policy import SignaturePolicy, load_signature_policy
from mailsvc.signatures.report import DocumentOutcome, DocumentSignatureReport, SignatureResult
from mailsvc.signatures.smime import NestingTooDeep

pass_ctx = click.make_pass_decorator(Context)

OUTCOME_TEXT = {
    DocumentOutcome.VALID: "có giá trị pháp lý (legally valid)",
    DocumentOutcome.REFERENCE_ONLY: "chỉ có giá trị tham khảo (reference only)",
    DocumentOutcome.INVALID: "không hợp lệ, từ chối tiếp nhận (invalid)",
}
KIND_TEXT = {"personal": "cá nhân / personal", "organisation": "cơ quan / organisation"}


def policies_path(ctx: Context) -> Path:
    from mailsvc.app import policies_dir

    directory = policies_dir(ctx.settings)
    if (directory / "signature.yaml").exists():
        return directory
    return PACKAGED_POLICIES


def load_policy(ctx: Context, override: Path | None) -> SignaturePolicy:
    return load_signature_policy(override or policies_path(ctx) / "signature.yaml")


def build_engine(
    ctx: Context, policy: SignaturePolicy, extra_trust: tuple[Path, ...]
) -> SignatureEngine:
    home = ctx.home
    anchors = (policies_path(ctx) / "trust", home / "trust", *extra_trust)
    return SignatureEngine(policy, trust_config(policy, anchors, home), gnupg_home=home_gnupg(home))


def quiet_pyhanko(ctx: Context) -> None:
    """pyHanko logs every failed check with a traceback; our reports already say why."""
    if not ctx.debug:
        for name in ("pyhanko", "pyhanko_certvalidator"):
            logging.getLogger(name).setLevel(logging.ERROR)


def _signature_lines(n: int, s: SignatureResult, ctx: Context) -> list[str]:
    where = f"{s.format.value.upper()}" + (f" {s.field_name}" if s.field_name else "")
    verdict = s.indication.value + (f"/{s.subindication}" if s.subindication else "")
    lines = [f"  [{n}] {where}: {verdict} — {s.detail}"]
    if s.signer_name or s.organisation:
        kind = KIND_TEXT.get(s.kind.value, s.kind.value)
        lines.append(f"      signer:       {s.signer_name} ({kind})")
        if s.organisation:
            lines.append(f"      organisation: {s.organisation}")
    if s.serial:
        lines.append(f"      serial:       {s.serial}")
    if s.issuer:
        lines.append(f"      issuer:       {s.issuer}")
    if s.signing_time:
        lines.append(f"      signing time: {show_time(s.signing_time, ctx)} (claimed by signer)")
    if s.timestamp_time:
        lines.append(f"      timestamp:    {show_time(s.timestamp_time, ctx)} (trusted TSA)")
    if s.revoked_at:
        lines.append(f"      revoked at:   {show_time(s.revoked_at, ctx)}")
    if s.modification and s.modification != "none":
        lines.append(f"      changes after signing: {s.modification}")
    return lines


def format_report(report: DocumentSignatureReport, ctx: Context) -> str:
    lines = [
        f"{report.document}: {OUTCOME_TEXT[report.outcome]} [{report.reason}]",
        f"  {report.detail}",
        f"  sha256 {report.sha256}",
    ]
    if not report.signatures:
        lines.append("  no signatures")
    for n, s in enumerate(report.signatures, start=1):
        lines.extend(_signature_lines(n, s, ctx))
    return "\n".join(lines)


@click.command("verify")
@click.argument(
    "files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a report.")
@click.option(
    "--policy",
    "policy_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Use this signature policy instead of policies/signature.yaml.",
)
@click.option(
    "--trust-dir",
    "trust_dirs",
    multiple=True,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Extra directory of trust-anchor certificates (repeatable).",
)
@pass_ctx
def verify_cmd(
    ctx: Context,
    files: tuple[Path, ...],
    as_json: bool,
    policy_file: Path | None,
    trust_dirs: tuple[Path, ...],
) -> None:
    """Verify the digital signatures of FILE... offline (PDF, x.pdf + x.pdf.p7s, .p7m,
    .sig/.asc, or a whole .eml message) and say what each document is worth."""
    quiet_pyhanko(ctx)
    policy = load_policy(ctx, policy_file)
    engine = build_engine(ctx, policy, trust_dirs)
    messages = [f for f in files if f.suffix.lower() == ".eml"]
    plain = [(str(f), f.read_bytes()) for f in files if f not in messages]

    async def run() -> list[DocumentSignatureReport]:
        reports = await engine.verify_files(plain) if plain else []
        for path in messages:
            try:
                found = await engine.verify_message(path.read_bytes(), None)
            except NestingTooDeep as exc:
                raise MailsvcError(f"cannot verify {path}: {exc}") from exc
            for report in found:
                reports.append(replace(report, document=f"{path}: {report.document}"))
        return reports

    try:
        reports = asyncio.run(run())
    except MailsvcError:
        raise
    except OSError as exc:
        raise MailsvcError(f"cannot verify: {exc}") from exc
    if as_json:
        zone = display_zone(ctx)
        click.echo(json.dumps([r.to_dict(zone) for r in reports], ensure_ascii=False, indent=2))
    else:
        click.echo("\n\n".join(format_report(r, ctx) for r in reports))
    if any(r.outcome is DocumentOutcome.INVALID for r in reports):
        sys.exit(2)


def register(group: click.Group) -> None:
    group.add_command(verify_cmd)
