"""The signatures a delivered message's documents carried, one row each (per message row).

Written in the acceptance transaction from the signatures stage's typed reports
(``mailsvc.signatures.records``); the workspace's signature report reads them back and the
mailbox checks find priority messages by the certificate's fingerprint, which has its own
indexed column.
"""

from __future__ import annotations

from sqlalchemy import ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from mailsvc.db.base import Base


class MessageSignature(Base):
    """One signature on one document of a delivered message, as validated on arrival."""

    __tablename__ = "message_signature"
    __table_args__ = (
        Index("ix_message_signature_fingerprint", "fingerprint", "message_record_id"),
        Index("ix_message_signature_message", "message_record_id", "position"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    message_record_id: Mapped[int] = mapped_column(ForeignKey("message.id"))
    position: Mapped[int] = mapped_column(Integer, default=0)  # order in the verdict
    document: Mapped[str] = mapped_column(Text, default="")  # file name, "(message)"
    format: Mapped[str] = mapped_column(String(16), default="")  # pdf | cms | smime | openpgp
    indication: Mapped[str] = mapped_column(String(16), default="")  # ETSI main indication
    subindication: Mapped[str] = mapped_column(Text, default="")
    signer: Mapped[str] = mapped_column(Text, default="")
    organisation: Mapped[str] = mapped_column(Text, default="")
    kind: Mapped[str] = mapped_column(String(16), default="")  # personal | organisation | unknown
    serial: Mapped[str] = mapped_column(Text, default="")
    # SHA-256 of the certificate (OpenPGP: the key's fingerprint): lower-case hex, no colons.
    fingerprint: Mapped[str] = mapped_column(String(128), default="")
