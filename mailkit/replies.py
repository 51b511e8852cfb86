"""Classification of SMTP replies: row status, throttling and sending quotas.

The reply code decides the row status (RFC 5321 section 4.2.1): 2xx sent, 4xx
temporary, 5xx permanent. Two kinds of reply need more than the code, because
they are about the sender's account rather than one message:

- throttling: the server wants fewer connections or a slower pace (421 closes
  the channel, 454 is "temporary failure", for example Amazon SES's "Maximum
  sending rate exceeded" or Gmail's "too many login attempts");
- a sending quota: the account may send no more messages for now (Gmail's
  "550 5.4.5 Daily user sending limit exceeded", SES's "454 Throttling failure:
  Daily message quota exceeded"). Every later message would get the same reply.
"""

from __future__ import annotations

import re

__all__ = [
    "DEFERRED",
    "FAILED",
    "PARTIAL",
    "SENT",
    "SKIPPED",
    "UNKNOWN",
    "classify",
    "enhanced_status",
    "is_quota",
    "is_session_end",
    "is_throttle",
]

SENT = "sent"
FAILED = "failed"
DEFERRED = "deferred"
PARTIAL = "partial"
UNKNOWN = "unknown"
SKIPPED = "skipped"

# Reply codes that ask the client to back off: 421 "service not available,
# closing transmission channel", 454 "temporary failure" (throttling at Amazon SES
# and Gmail), and 432, which Microsoft 365 sends as "4.3.2 ... sender thread
# limit exceeded" when a mailbox has too many concurrent sessions.
THROTTLE_CODES = frozenset({421, 432, 454})

_ENHANCED_STATUS = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")
_THROTTLE_TEXT = re.compile(
    r"too many|rate limit|sending rate|throttl|concurrent|try again later",
    re.IGNORECASE,
)
_SESSION_TEXT = re.compile(r"\b(this|per|each) (session|connection)\b", re.IGNORECASE)
_QUOTA_TEXT = re.compile(r"quota|sending limit|message limit exceeded", re.IGNORECASE)

# Commands whose replies concern the sender's account or session. Replies to
# RCPT concern one recipient ("452 4.2.2 mailbox over quota", "450 4.2.1 the
# recipient is receiving mail too fast"), so they are neither throttling of the
# sender nor the sender's quota.
_SESSION_COMMANDS = frozenset({"CONNECT", "EHLO", "STARTTLS", "AUTH", "MAIL", "DATA", "EOD"})


def classify(code: int) -> str:
    """Map a reply code to a row status: 2xx sent, 4xx deferred, anything else failed."""
    if 200 <= code < 300:
        return SENT
    if 400 <= code < 500:
        return DEFERRED
    return FAILED


def enhanced_status(reply: str) -> str | None:
    """Return the RFC 3463 enhanced status code in ``reply`` (such as "5.4.5"), if any."""
    match = _ENHANCED_STATUS.search(reply)
    return ".".join(match.groups()) if match else None


def is_quota(command: str, code: int | None, reply: str) -> bool:
    """Return whether ``reply`` to ``command`` says the sending quota is used up.

    ``command`` is an SMTP verb, "CONNECT" for the greeting or "EOD" for the
    reply after the final ".". Mailbox quotas of recipients (enhanced status
    X.2.2) do not count.
    """
    if code is None or code < 400 or command.upper() not in _SESSION_COMMANDS:
        return False
    status = enhanced_status(reply)
    if status is not None and status.endswith(".2.2"):
        return False
    if status == "5.4.5" and command.upper() in ("MAIL", "EOD"):
        return True
    return bool(_QUOTA_TEXT.search(reply))


def is_session_end(code: int | None, reply: str) -> bool:
    """Return whether a 421 closes only this session, so a new one can go on at once.

    That is an idle timeout (enhanced status X.4.2, "bad connection") or a cap on
    messages per session ("Too many messages in this session").
    """
    if code != 421:
        return False
    status = enhanced_status(reply)
    if status is not None and status.endswith(".4.2"):
        return True
    return bool(_SESSION_TEXT.search(reply))


def is_throttle(command: str, code: int | None, reply: str) -> bool:
    """Return whether ``reply`` to ``command`` asks for fewer connections or a slower pace.

    A quota reply is not throttling, because waiting a few seconds does not help
    it, and neither is a 421 that ends only this session.
    """
    if code is None or not 400 <= code < 500 or is_quota(command, code, reply):
        return False
    if is_session_end(code, reply):
        return False
    if code in THROTTLE_CODES:
        return True
    return command.upper() in _SESSION_COMMANDS and bool(_THROTTLE_TEXT.search(reply))
