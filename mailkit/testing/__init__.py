"""Test helpers for mailkit: a fault-injecting SMTP server and test TLS certificates.

:class:`FaultSMTPServer` is an SMTP server on 127.0.0.1 for tests and benchmarks.
It records every session and can reject, defer, delay, stall or drop any step of
the SMTP dialogue, and model provider limits. See ``mailkit.testing.fault_server``.
"""

from .certificates import (
    CertificateAuthority,
    ServerCertificate,
    TestCertificates,
    make_self_signed_certificate,
    make_test_certificates,
)
from .fault_server import AuthAttempt, FaultSMTPServer, RecordedMessage, SessionRecord
from .rules import (
    DELAY_NAMES,
    EVENTS,
    CommandContext,
    Extensions,
    Rule,
    defer_recipient,
    drop_at,
    quota_exceeded_after,
    reject_recipient,
    reply_to_transaction,
    stall_at,
)

__all__ = [
    "DELAY_NAMES",
    "EVENTS",
    "AuthAttempt",
    "CertificateAuthority",
    "CommandContext",
    "Extensions",
    "FaultSMTPServer",
    "RecordedMessage",
    "Rule",
    "ServerCertificate",
    "SessionRecord",
    "TestCertificates",
    "defer_recipient",
    "drop_at",
    "make_self_signed_certificate",
    "make_test_certificates",
    "quota_exceeded_after",
    "reject_recipient",
    "reply_to_transaction",
    "stall_at",
]
