"""External mailboxes: an agency's official mailbox on another IMAP server, fetched into
a local mailbox through the same pipeline and acceptance as mail received over SMTP."""
