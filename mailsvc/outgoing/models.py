"""The outgoing register (sổ văn bản đi): one row per document our officials send to other
agencies, one delivery line per recipient (nơi nhận) and the history of both.

A delivery line's status follows the exchange's status messages: ``queued`` (in our
outbound queue) → ``sent`` (the other server answered 250) → ``received`` (01) →
``registered`` (03) or ``refused`` (02) → ``assigned`` (04) → ``in_progress`` (05) →
``done`` (06); a recall moves it to ``recall_requested`` and then ``recalled`` (15) or
``recall_refused`` (16). ``failed`` means our queue gave up (the sender got a bounce).
An outgoing number (số đi) is taken, gapless per year, only when the clerk issues a
document with the organisation's signature (``mailsvc outgoing approve``).
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Date, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from mailsvc.db.base import Base, utcnow


class OutgoingDocument(Base):
    __tablename__ = "outgoing_document"
    __table_args__ = (
        UniqueConstraint("year", "outgoing_number"),
        Index("ix_outgoing_document_message_id", "message_id"),
        Index("ix_outgoing_document_created", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    year: Mapped[int] = mapped_column(Integer)
    outgoing_number: Mapped[int | None] = mapped_column(Integer, default=None)  # số đi
    kind: Mapped[str] = mapped_column(String(16), default="direct")  # direct | issued
    # draft (waiting for the clerk's approval) | sent | recall_requested | recalled
    state: Mapped[str] = mapped_column(String(24), default="sent")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(default=None)
    sender: Mapped[str] = mapped_column(String(320), default="")  # the official
    approved_by: Mapped[str] = mapped_column(String(320), default="")
    message_id: Mapped[str] = mapped_column(String(998), default="")
    message_key: Mapped[str] = mapped_column(String(64), default="")
    queue_id: Mapped[str] = mapped_column(String(32), default="")
    subject: Mapped[str] = mapped_column(Text, default="")
    number_notation: Mapped[str] = mapped_column(String(128), default="")
    issued_date: Mapped[date | None] = mapped_column(Date, default=None)
    doc_type: Mapped[str] = mapped_column(String(64), default="")
    abstract: Mapped[str] = mapped_column(Text, default="")
    signer: Mapped[str] = mapped_column(String(256), default="")
    urgency: Mapped[str] = mapped_column(String(16), default="normal")
    main_filename: Mapped[str] = mapped_column(String(256), default="")
    main_sha256: Mapped[str] = mapped_column(String(64), default="")
    blob_sha256: Mapped[str] = mapped_column(String(64), default="")  # the message as sent
    recall_reason: Mapped[str] = mapped_column(Text, default="")

    deliveries: Mapped[list[OutgoingDelivery]] = relationship(
        back_populates="document", order_by="OutgoingDelivery.id"
    )
    history: Mapped[list[OutgoingHistory]] = relationship(
        back_populates="document", order_by="OutgoingHistory.id"
    )


class OutgoingDelivery(Base):
    __tablename__ = "outgoing_delivery"
    __table_args__ = (Index("ix_outgoing_delivery_outbound", "outbound_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    document_id: Mapped[int] = mapped_column(ForeignKey("outgoing_document.id"))
    recipient: Mapped[str] = mapped_column(String(320))
    agency_code: Mapped[str] = mapped_column(String(64), default="")
    agency_name: Mapped[str] = mapped_column(String(512), default="")
    status: Mapped[str] = mapped_column(String(24), default="queued")
    outbound_id: Mapped[int | None] = mapped_column(Integer, default=None)
    their_number: Mapped[str] = mapped_column(String(64), default="")  # their số đến
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(default=None)
    answered_at: Mapped[datetime | None] = mapped_column(default=None)  # first status back
    note: Mapped[str] = mapped_column(Text, default="")

    document: Mapped[OutgoingDocument] = relationship(back_populates="deliveries")


class OutgoingHistory(Base):
    __tablename__ = "outgoing_history"

    id: Mapped[int] = mapped_column(primary_key=True)
    document_id: Mapped[int] = mapped_column(ForeignKey("outgoing_document.id"))
    recipient: Mapped[str] = mapped_column(String(320), default="")  # "" = the document
    at: Mapped[datetime] = mapped_column(default=utcnow)
    actor: Mapped[str] = mapped_column(String(320), default="")
    from_status: Mapped[str] = mapped_column(String(24), default="")
    to_status: Mapped[str] = mapped_column(String(24))
    note: Mapped[str] = mapped_column(Text, default="")

    document: Mapped[OutgoingDocument] = relationship(back_populates="history")


class OutgoingCounter(Base):
    """The last outgoing number (số đi) given in a year."""

    __tablename__ = "outgoing_counter"

    year: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    last_number: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
