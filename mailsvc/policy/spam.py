"""policies/spam.yaml: spam rules, scores of other stages' reasons, and thresholds.

The spam stage evaluates ``rules``; each hit is a FAIL finding whose reason is the rule
name and whose score is the rule's score. The runner sums :meth:`SpamPolicy.score_for`
over *all* findings of a message (so ``dkim-fail`` from the authentication stage counts
through ``reason_scores``) and asks :meth:`SpamPolicy.action_for` what the total means.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from mailsvc.errors import ConfigError
from mailsvc.policy.authentication import describe_validation_error, read_yaml_mapping
from mailsvc.verdict import Action, Finding, Status

SPAM_STAGE = "spam"

SpamAction = Literal["deliver", "junk", "reject"]


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


class Rule(_Section):
    score: float
    enabled: bool = True
    description: str = ""


class BulkHeadersRule(Rule):
    # Present at all: a list or campaign mailer.
    headers: tuple[str, ...] = (
        "List-Unsubscribe",
        "List-Id",
        "X-Campaign",
        "X-Campaign-Id",
        "X-Mailgun-Tag",
        "X-SES-Outgoing",
    )
    precedence: tuple[str, ...] = ("bulk", "list", "junk")


class MassMailerRule(Rule):
    # Case-insensitive substrings of X-Mailer / User-Agent.
    mailers: tuple[str, ...] = (
        "mailchimp",
        "sendblaster",
        "atomic mail sender",
        "sendinblue",
        "brevo",
        "mailerlite",
        "massmail",
        "bulk mailer",
        "group mail",
        "ems professional",
        "phplist",
        "interspire",
        "acelle",
        "mailwizz",
    )


class UrlShortenerRule(Rule):
    domains: tuple[str, ...] = (
        "bit.ly",
        "tinyurl.com",
        "t.co",
        "goo.gl",
        "ow.ly",
        "is.gd",
        "buff.ly",
        "cutt.ly",
        "rb.gy",
        "shorturl.at",
        "tiny.cc",
        "rebrand.ly",
        "bitly.com",
        "s.id",
        "t.ly",
        "v.gd",
    )


class ExecutableRule(Rule):
    extensions: tuple[str, ...] = (
        "exe", "scr", "com", "pif", "bat", "cmd", "js", "jse", "vbs", "vbe", "wsf", "wsh",
        "hta", "msi", "msp", "cpl", "jar", "ps1", "psm1", "lnk", "reg", "scf", "inf",
        "dll", "sys", "chm", "appx", "msix", "iso", "img", "vhd", "vhdx", "apk", "sh",
    )  # fmt: skip
    inspect_archives: bool = True  # look at the names inside ZIP attachments
    max_archive_bytes: int = Field(default=50 * 1024 * 1024, gt=0)
    max_archive_entries: int = Field(default=10000, gt=0)


class DoubleExtensionRule(Rule):
    # A decoy extension before an executable one: "cong-van.pdf.exe".
    decoys: tuple[str, ...] = (
        "pdf", "doc", "docx", "xls", "xlsx", "ppt", "pptx", "odt", "ods", "rtf", "txt",
        "jpg", "jpeg", "png", "gif", "bmp", "tif", "tiff", "zip", "rar", "7z", "htm", "html",
        "mp3", "mp4", "avi",
    )  # fmt: skip


class MacroOfficeRule(Rule):
    extensions: tuple[str, ...] = (
        "docm", "dotm", "xlsm", "xltm", "xlam", "pptm", "potm", "ppsm", "ppam", "sldm",
    )  # fmt: skip
    max_document_bytes: int = Field(default=50 * 1024 * 1024, gt=0)


def _rule(score: float, description: str) -> Rule:
    return Rule(score=score, description=description)


class Rules(_Section):
    gtube: Rule = _rule(1000.0, "GTUBE test string")
    unknown_sender_domain: Rule = Field(
        default=_rule(1.0, "From domain is not in the agency directory"),
        alias="unknown-sender-domain",
    )
    free_mail_sender: Rule = Field(
        default=_rule(6.0, "foreign free mail used for official business"),
        alias="free-mail-sender",
    )
    bulk_headers: BulkHeadersRule = Field(
        default=BulkHeadersRule(score=2.0, description="list / campaign headers"),
        alias="bulk-headers",
    )
    mass_mailer: MassMailerRule = Field(
        default=MassMailerRule(score=3.0, description="sent by a mass-mailing program"),
        alias="mass-mailer",
    )
    ip_literal_url: Rule = Field(
        default=_rule(2.5, "link to a bare IP address"), alias="ip-literal-url"
    )
    link_text_mismatch: Rule = Field(
        default=_rule(4.0, "link text shows one domain, the link goes to another"),
        alias="link-text-mismatch",
    )
    url_shortener: UrlShortenerRule = Field(
        default=UrlShortenerRule(score=1.5, description="link through a URL shortener"),
        alias="url-shortener",
    )
    executable_attachment: ExecutableRule = Field(
        default=ExecutableRule(score=8.0, description="executable attachment"),
        alias="executable-attachment",
    )
    double_extension: DoubleExtensionRule = Field(
        default=DoubleExtensionRule(score=10.0, description="disguised file name"),
        alias="double-extension",
    )
    macro_office: MacroOfficeRule = Field(
        default=MacroOfficeRule(score=5.0, description="Office document with macros"),
        alias="macro-office",
    )
    missing_date: Rule = Field(default=_rule(1.0, "no Date header"), alias="missing-date")
    missing_message_id: Rule = Field(
        default=_rule(1.0, "no Message-ID header"), alias="missing-message-id"
    )
    display_name_spoof: Rule = Field(
        default=_rule(4.0, "From display name shows another address"),
        alias="display-name-spoof",
    )
    lookalike_domain: Rule = Field(
        default=_rule(6.0, "From, Sender or Reply-To domain spelled with look-alike letters"),
        alias="lookalike-domain",
    )
    raw_8bit_header: Rule = Field(
        default=_rule(1.0, "unencoded 8-bit bytes in the header"), alias="raw-8bit-header"
    )
    multiple_from: Rule = Field(
        default=_rule(5.0, "more than one From header or address"), alias="multiple-from"
    )

    def by_name(self) -> dict[str, Rule]:
        """Rules by their kebab-case name (the finding reason)."""
        out: dict[str, Rule] = {}
        for field_name, info in type(self).model_fields.items():
            out[info.alias or field_name] = getattr(self, field_name)
        return out


RULE_NAMES: tuple[str, ...] = tuple(info.alias or name for name, info in Rules.model_fields.items())


class Thresholds(_Section):
    junk: float = 5.0  # deliver to the Junk folder, never registered
    reject: float = 15.0  # 5xx at DATA

    @model_validator(mode="after")
    def _ordered(self) -> Thresholds:
        if self.reject <= self.junk:
            raise ValueError("reject must be greater than junk")
        return self


DEFAULT_FREE_MAIL = (
    "gmail.com", "googlemail.com", "yahoo.com", "yahoo.com.vn", "ymail.com", "rocketmail.com",
    "hotmail.com", "hotmail.com.vn", "outlook.com", "live.com", "msn.com", "aol.com",
    "icloud.com", "me.com", "mac.com", "mail.com", "gmx.com", "gmx.net", "gmx.de",
    "yandex.com", "yandex.ru", "mail.ru", "protonmail.com", "proton.me", "pm.me",
    "zoho.com", "tutanota.com", "qq.com", "163.com", "126.com", "sina.com", "yeah.net",
    "naver.com", "daum.net",
)  # fmt: skip


class SpamPolicy(_Section):
    version: str = "1"
    thresholds: Thresholds = Thresholds()
    free_mail_domains: tuple[str, ...] = DEFAULT_FREE_MAIL
    rules: Rules = Rules()
    # Scores for other stages' reasons (authentication, ...). Negative values reward.
    reason_scores: dict[str, float] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _reasons_are_not_rules(self) -> SpamPolicy:
        clash = sorted(set(self.reason_scores) & set(RULE_NAMES))
        if clash:
            raise ValueError(f"reason_scores repeats rule names {clash}: set rules.<name>.score")
        return self

    def rule(self, name: str) -> Rule:
        return self.rules.by_name()[name]

    def score_for(self, finding: Finding) -> float:
        """This finding's contribution to the message's spam score."""
        if finding.stage == SPAM_STAGE:
            if finding.status is not Status.FAIL:
                return 0.0
            rule = self.rules.by_name().get(finding.reason)
            if rule is None:  # e.g. the runner's own "spam-score" summary: never counted twice
                return 0.0
            return rule.score if rule.enabled else 0.0
        if finding.stage == "spamd" and finding.status is not Status.ERROR:
            return finding.score  # SpamAssassin's own score, on the same scale
        return self.reason_scores.get(finding.reason, 0.0)

    def total(self, findings: list[Finding] | tuple[Finding, ...]) -> float:
        return sum(self.score_for(f) for f in findings)

    def action_for(self, total: float) -> SpamAction:
        if total >= self.thresholds.reject:
            return "reject"
        if total >= self.thresholds.junk:
            return "junk"
        return "deliver"

    def verdict_action_for(self, total: float) -> Action:
        """The same decision in the verdict's words (junk is Action.QUARANTINE)."""
        return {
            "deliver": Action.DELIVER,
            "junk": Action.QUARANTINE,
            "reject": Action.REJECT,
        }[self.action_for(total)]


def load_spam_policy(path: Path | str) -> SpamPolicy:
    """Load and validate spam.yaml; ConfigError names the file and the key."""
    path = Path(path)
    try:
        return SpamPolicy.model_validate(read_yaml_mapping(path))
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(exc, str(path))) from exc
