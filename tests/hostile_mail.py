"""Builders for test messages that carry viruses or hostile structure.

Generated at test time (nothing with EICAR or a bomb is committed, so scanners on
developer machines stay quiet). Importable from any test directory: ``import hostile_mail``.
"""

from __future__ import annotations

import io
import zipfile
from email.message import EmailMessage
from email.policy import SMTP

from mailsvc.adapters.clamd_daemon import EICAR, TEST_MARKER

__all__ = ["EICAR", "TEST_MARKER"]

SENDER = "sender@partner.example.vn"
RECIPIENT = "clerk@example.vn"


def base(subject: str = "Công văn số 12/UBND", body: str = "Kính gửi Văn phòng.\n") -> EmailMessage:
    msg = EmailMessage(policy=SMTP)
    msg["From"] = SENDER
    msg["To"] = RECIPIENT
    msg["Subject"] = subject
    msg["Message-ID"] = "<test-1@partner.example.vn>"
    msg.set_content(body)
    return msg


def clean() -> bytes:
    msg = base()
    msg.add_attachment("Ghi chú: họp lúc 8 giờ.\n".encode(), maintype="text", subtype="plain",
                       filename="ghi-chu.txt")  # fmt: skip
    return msg.as_bytes()


def eicar_plain() -> bytes:
    """EICAR as an attachment (clamd decodes the base64 part and matches the MD5)."""
    msg = base()
    msg.add_attachment(EICAR, maintype="application", subtype="octet-stream",
                       filename="eicar.com")  # fmt: skip
    return msg.as_bytes()


def eicar_in_body() -> bytes:
    """EICAR pasted into the text body (matched by our .ndb body signature)."""
    return base(body=EICAR.decode("ascii") + "\n").as_bytes()


def zip_bytes(members: dict[str, bytes], method: int = zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", method) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buf.getvalue()


def with_attachment(data: bytes, filename: str, subtype: str = "zip") -> bytes:
    msg = base()
    msg.add_attachment(data, maintype="application", subtype=subtype, filename=filename)
    return msg.as_bytes()


def eicar_zipped() -> bytes:
    return with_attachment(zip_bytes({"tai-lieu/eicar.com": EICAR}), "tai-lieu.zip")


def eicar_nested() -> bytes:
    """A forwarded message (message/rfc822) whose attachment is EICAR."""
    inner = base(subject="Fwd: original")
    inner.add_attachment(EICAR, maintype="application", subtype="octet-stream",
                         filename="eicar.com")  # fmt: skip
    outer = base(subject="Chuyển tiếp")
    outer.add_attachment(inner)
    return outer.as_bytes()


def marker_virus() -> bytes:
    """A non-EICAR "virus": our own Mailsvc.Test.Marker body signature in a text file."""
    return with_attachment(b"report\n" + TEST_MARKER + b"\n", "report.txt", "octet-stream")


def zip_bomb(levels: int = 4, fan_out: int = 16, leaf_bytes: int = 4 * 1024 * 1024) -> bytes:
    """A 42.zip-like bomb: ``fan_out`` copies of a zip at each of ``levels`` levels,
    the innermost holding ``fan_out`` files of ``leaf_bytes`` zeros each.

    The defaults declare 16**4 * 8 MiB = 256 GiB in about 18 KB.
    """
    leaf = zip_bytes({f"{i}.bin": bytes(leaf_bytes) for i in range(fan_out)})
    # Writing the same zeros 16 times costs time; reuse one compressed member instead.
    current = leaf
    for level in range(levels - 1):
        current = zip_bytes({f"lib{level}-{i}.zip": current for i in range(fan_out)})
    return current


def ratio_bomb(size: int = 16 * 1024 * 1024) -> bytes:
    """One member of ``size`` zeros: ratio ~1000:1."""
    return zip_bytes({"zeros.txt": bytes(size)})


def deep_nesting(depth: int) -> bytes:
    """``depth`` multipart/mixed levels, each holding the next."""
    lines = [f"From: {SENDER}", f"To: {RECIPIENT}", "Subject: deep", "MIME-Version: 1.0"]
    body: list[str] = []
    for level in range(depth):
        boundary = f"b{level}"
        body += [f'Content-Type: multipart/mixed; boundary="{boundary}"', "", f"--{boundary}"]
    body += ["Content-Type: text/plain", "", "bottom"]
    for level in reversed(range(depth)):
        body += [f"--b{level}--"]
    # The first Content-Type belongs to the message header block.
    text = "\r\n".join(lines + body) + "\r\n"
    return text.encode("ascii")


def nested_messages(depth: int) -> bytes:
    """``depth`` messages forwarded inside each other (message/rfc822)."""
    msg = base(subject="level 0")
    for level in range(1, depth + 1):
        outer = base(subject=f"level {level}")
        outer.add_attachment(msg)
        msg = outer
    return msg.as_bytes()


def many_parts(count: int) -> bytes:
    parts = [f"From: {SENDER}", f"To: {RECIPIENT}", "Subject: many", "MIME-Version: 1.0",
             'Content-Type: multipart/mixed; boundary="x"', ""]  # fmt: skip
    for i in range(count):
        parts += ["--x", "Content-Type: text/plain", "", f"part {i}"]
    parts += ["--x--", ""]
    return "\r\n".join(parts).encode("ascii")


def huge_header(total: int = 300 * 1024, line: int = 400) -> bytes:
    """Many short X- header lines adding up to ``total`` bytes."""
    head = [f"From: {SENDER}", f"To: {RECIPIENT}", "Subject: headers"]
    filler = "x" * (line - 20)
    head += [f"X-Filler-{i:06d}: {filler}" for i in range(total // line + 1)]
    return ("\r\n".join(head) + "\r\n\r\nbody\r\n").encode("ascii")


def long_header_line(length: int = 100_000) -> bytes:
    return (f"From: {SENDER}\r\nTo: {RECIPIENT}\r\nSubject: " + "A" * length
            + "\r\n\r\nbody\r\n").encode("ascii")  # fmt: skip
