"""The incoming register (sổ đăng ký văn bản đến): registers, their yearly counters,
documents, attachments stored once by SHA-256, and each document's status history.

An incoming number (số đến) is taken from ``register_counter`` (one row per register and
year, locked for the transaction) so numbers form one unbroken sequence; the unique
constraint on (register, year, number) is the backstop. Rows are never deleted: a
deleted document keeps its number with status ``deleted``.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from mailsvc.db.base import Base, utcnow


class Register(Base):
    """One register, e.g. the default incoming register of a local agency (or mail domain)."""

    __tablename__ = "register"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(128), unique=True)
    name: Mapped[str] = mapped_column(String(256))
    kind: Mapped[str] = mapped_column(String(16), default="incoming")
    agency_id: Mapped[int | None] = mapped_column(ForeignKey("agency.id"), default=None)
    domain: Mapped[str] = mapped_column(String(253), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class RegisterCounter(Base):
    """The last incoming number given in a register for a year (locked while numbering)."""

    __tablename__ = "register_counter"

    register_id: Mapped[int] = mapped_column(ForeignKey("register.id"), primary_key=True)
    year: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    last_number: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class RegisterDocument(Base):
    """One incoming document in a register (numbered when legally valid)."""

    __tablename__ = "register_document"
    __table_args__ = (
        UniqueConstraint("register_id", "year", "incoming_number"),
        Index("ix_register_document_received", "register_id", "received_at"),
        Index("ix_register_document_message_key", "register_id", "message_key"),
        Index("ix_register_document_main_sha256", "register_id", "sender", "main_sha256"),
        Index("ix_register_document_ref_key", "register_id", "sender", "ref_key"),
        # The workspace's list pages: scope, filter, then id for the keyset order.
        Index("ix_register_document_page", "register_id", "id", postgresql_include=["received_at"]),
        Index("ix_register_document_status_page", "register_id", "status", "id"),
        Index("ix_register_document_agency_page", "register_id", "agency_code", "id"),
        Index("ix_register_document_outcome_page", "register_id", "signature_outcome", "id"),
        Index("ix_register_document_year_page", "register_id", "year", "id"),
        Index("ix_register_document_urgency_page", "register_id", "urgency", "id"),
        Index("ix_register_document_year_urgency_page", "register_id", "year", "urgency", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    register_id: Mapped[int] = mapped_column(ForeignKey("register.id"))
    incoming_number: Mapped[int | None] = mapped_column(Integer, default=None)
    year: Mapped[int] = mapped_column(Integer)
    received_at: Mapped[datetime] = mapped_column()
    registered_at: Mapped[datetime | None] = mapped_column(default=None)
    agency_code: Mapped[str] = mapped_column(String(64), default="")
    agency_name: Mapped[str] = mapped_column(String(512), default="")
    sender: Mapped[str] = mapped_column(String(320), default="")
    recipient: Mapped[str] = mapped_column(String(320), default="")
    message_record_id: Mapped[int | None] = mapped_column(ForeignKey("message.id"), default=None)
    queue_id: Mapped[str] = mapped_column(String(32), default="")
    message_id: Mapped[str] = mapped_column(String(998), default="")
    subject: Mapped[str] = mapped_column(Text, default="")
    number_notation: Mapped[str] = mapped_column(String(128), default="")
    issued_date: Mapped[date | None] = mapped_column(Date, default=None)
    doc_type: Mapped[str] = mapped_column(String(64), default="")
    abstract: Mapped[str] = mapped_column(Text, default="")
    urgency: Mapped[str] = mapped_column(String(16), default="normal")
    signer: Mapped[str] = mapped_column(String(256), default="")
    signature_outcome: Mapped[str] = mapped_column(String(16))
    signature_reason: Mapped[str] = mapped_column(String(64), default="")
    status: Mapped[str] = mapped_column(String(16))
    deadline: Mapped[date | None] = mapped_column(Date, default=None)
    assigned_to: Mapped[str] = mapped_column(String(256), default="")
    note: Mapped[str] = mapped_column(Text, default="")
    # De-duplication keys: the first message, the main attachment, number+agency.
    message_key: Mapped[str] = mapped_column(String(64), default="")
    main_sha256: Mapped[str] = mapped_column(String(64), default="")
    ref_key: Mapped[str] = mapped_column(String(64), default="")
    duplicates: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    register: Mapped[Register] = relationship()
    attachments: Mapped[list[DocumentAttachment]] = relationship(
        order_by="DocumentAttachment.position", back_populates="document"
    )
    history: Mapped[list[DocumentHistory]] = relationship(
        order_by="DocumentHistory.id", back_populates="document"
    )
    deliveries: Mapped[list[DocumentDelivery]] = relationship(
        order_by="DocumentDelivery.id", back_populates="document"
    )


class Attachment(Base):
    """A file stored once in the blob store, by SHA-256."""

    __tablename__ = "register_attachment"

    id: Mapped[int] = mapped_column(primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    size: Mapped[int] = mapped_column(BigInteger, default=0)
    stored: Mapped[bool] = mapped_column(Boolean, default=True)  # False: hash only (refused)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class DocumentAttachment(Base):
    """A document's file under the name and type it arrived with."""

    __tablename__ = "register_document_attachment"
    __table_args__ = (UniqueConstraint("document_id", "attachment_id", "filename"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    document_id: Mapped[int] = mapped_column(ForeignKey("register_document.id"), index=True)
    attachment_id: Mapped[int] = mapped_column(ForeignKey("register_attachment.id"), index=True)
    filename: Mapped[str] = mapped_column(String(512), default="")
    content_type: Mapped[str] = mapped_column(String(255), default="application/octet-stream")
    role: Mapped[str] = mapped_column(String(16), default="annex")  # main | annex | signature
    position: Mapped[int] = mapped_column(Integer, default=0)

    document: Mapped[RegisterDocument] = relationship(back_populates="attachments")
    attachment: Mapped[Attachment] = relationship(lazy="joined")


class DocumentDelivery(Base):
    """Each delivered copy (message record) that carried the document, first or duplicate."""

    __tablename__ = "register_delivery"

    id: Mapped[int] = mapped_column(primary_key=True)
    document_id: Mapped[int] = mapped_column(ForeignKey("register_document.id"), index=True)
    message_record_id: Mapped[int | None] = mapped_column(ForeignKey("message.id"), default=None)
    queue_id: Mapped[str] = mapped_column(String(32), default="")
    recipient: Mapped[str] = mapped_column(String(320), default="")
    kind: Mapped[str] = mapped_column(String(16), default="first")  # first | duplicate
    at: Mapped[datetime] = mapped_column(default=utcnow)

    document: Mapped[RegisterDocument] = relationship(back_populates="deliveries")


class DocumentHistory(Base):
    """A status transition (or assignment): who, when, why, from → to."""

    __tablename__ = "register_history"

    id: Mapped[int] = mapped_column(primary_key=True)
    document_id: Mapped[int] = mapped_column(ForeignKey("register_document.id"), index=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    actor: Mapped[str] = mapped_column(String(320))
    from_status: Mapped[str | None] = mapped_column(String(16), default=None)
    to_status: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(Text, default="")
    assigned_to: Mapped[str] = mapped_column(String(256), default="")

    document: Mapped[RegisterDocument] = relationship(back_populates="history")
