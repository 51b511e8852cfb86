"""Reply rules, command delays and EHLO extensions for :class:`FaultSMTPServer`.

A :class:`Rule` changes how the server handles one kind of SMTP event: it can
replace the reply, stall, or close the connection. The helper functions at the end
build rules for common provider behaviour, such as an unknown recipient or a
daily sending quota.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal

__all__ = [
    "DELAY_NAMES",
    "EVENTS",
    "CommandContext",
    "Extensions",
    "Rule",
    "defer_recipient",
    "drop_at",
    "normalize_delays",
    "quota_exceeded_after",
    "reject_recipient",
    "reply_to_transaction",
    "stall_at",
]

#: Events that a rule can match. GREETING is the server's first reply and EOD is
#: the end of the message data (the final "." line). The others are SMTP verbs.
EVENTS: frozenset[str] = frozenset(
    {
        "GREETING",
        "HELO",
        "EHLO",
        "STARTTLS",
        "AUTH",
        "MAIL",
        "RCPT",
        "DATA",
        "EOD",
        "RSET",
        "NOOP",
        "QUIT",
        "VRFY",
        "HELP",
    }
)

#: Keys accepted in a delay mapping. "ehlo" also applies to HELO. "tls_handshake"
#: is added to the STARTTLS reply, or to the greeting under implicit TLS, because
#: asyncio performs the handshake itself and offers no point to wait inside it.
DELAY_NAMES: frozenset[str] = frozenset(
    {
        "greeting",
        "ehlo",
        "starttls",
        "tls_handshake",
        "auth",
        "mail",
        "rcpt",
        "data",
        "eod",
        "rset",
        "noop",
        "quit",
    }
)

DropPoint = Literal["none", "before_reply", "after_reply"]

_REPLY_LINE = re.compile(r"[2-5][0-9][0-9]( [^\r\n]*)?")
_DROP_POINTS = ("none", "before_reply", "after_reply")

DEFAULT_UNKNOWN_RECIPIENT_REPLY = (
    "550 5.1.1 The email account that you tried to reach does not exist"
)
DEFAULT_DEFERRED_RECIPIENT_REPLY = (
    "451 4.3.0 Mailbox temporarily unavailable, try again later"
)
DEFAULT_QUOTA_REPLY = "550 5.4.5 Daily sending quota exceeded"


@dataclass(frozen=True)
class CommandContext:
    """State of one session at the moment an event reaches the rules.

    A rule's ``when`` predicate receives this object.
    """

    #: Event name from :data:`EVENTS`, such as "RCPT" or "EOD".
    event: str
    #: Command argument as received, or "" for none. AUTH credentials are masked.
    argument: str
    #: Address of a MAIL or RCPT command without angle brackets, else None.
    address: str | None
    #: 1-based number of the connection on this server, as in SessionRecord.
    session_id: int
    #: 1-based server-wide count of MAIL commands received, including the one
    #: that started the current transaction, or 0 before the first MAIL. A client
    #: that retries a message starts a new transaction with a new number.
    transaction_number: int
    #: Like ``transaction_number`` but counted within this session.
    session_transaction_number: int
    #: Messages that the server accepted before this event, over all sessions.
    accepted_messages: int
    #: Messages that the server accepted before this event in this session.
    session_accepted_messages: int
    #: True when the session runs over TLS (implicit TLS or after STARTTLS).
    tls_active: bool
    #: Login name of a successful AUTH in this session, else None.
    login: str | None
    #: Message data, dot-unstuffed with CRLF line endings, for EOD, else None.
    data: bytes | None = None


@dataclass(frozen=True)
class Rule:
    """Replace the normal handling of one SMTP event when the rule matches.

    A rule matches an event when ``event`` is equal and every given filter
    (``address``, ``transaction``, ``session``, ``when``) matches. Only the first
    matching rule in the server's list applies to an event. A rule with ``times``
    stops matching after it has applied that many times, counted over all sessions.

    When a rule applies, the server acts in this order:

    1. It waits ``stall`` seconds without reading or replying. The server's
       ``max_stall`` caps the wait, so ``math.inf`` means "until the cap".
    2. With ``drop="before_reply"`` it closes the connection without replying.
       At EOD this is the "unknown outcome" case: the server received the whole
       message, but the client never learns whether it was accepted.
    3. A ``reply`` with a 4xx or 5xx code is sent instead of running the command,
       so the command has no effect (a rejected RCPT adds no recipient). A reply
       with a 2xx or 3xx code lets the command run and replaces the text of its
       first final reply line (intermediate 334 AUTH challenges are left alone).
       At GREETING the reply always replaces the greeting.
    4. With ``drop="after_reply"`` it closes the connection right after that reply.

    A reply can span several lines, separated by "\\n". The server adds the
    "code-" continuation prefixes.
    """

    #: Event name from :data:`EVENTS`, case-insensitive.
    event: str
    #: Reply such as "550 5.1.1 No such user", or None to keep the normal reply.
    reply: str | None = None
    #: MAIL or RCPT address to match, compared case-insensitively.
    address: str | None = None
    #: Transaction number to match (see :attr:`CommandContext.transaction_number`).
    transaction: int | None = None
    #: Session to match (see :attr:`CommandContext.session_id`).
    session: int | None = None
    #: Extra predicate on the context. An exception it raises is stored in the
    #: session's ``errors`` and sent to the client as a "451 4.3.0" reply, or at
    #: GREETING as "421 4.3.0" followed by closing the connection.
    when: Callable[[CommandContext], bool] | None = field(default=None, compare=False)
    #: Point at which to close the connection.
    drop: DropPoint = "none"
    #: Seconds to wait before acting.
    stall: float = 0.0
    #: Maximum number of times the rule applies, or None for no limit.
    times: int | None = None

    def __post_init__(self) -> None:
        event = self.event.upper()
        if event not in EVENTS:
            raise ValueError(
                f"Invalid rule event {self.event!r}: use one of {sorted(EVENTS)}."
            )
        object.__setattr__(self, "event", event)
        if self.reply is not None:
            validate_reply(self.reply)
        if self.drop not in _DROP_POINTS:
            raise ValueError(
                f"Invalid drop point {self.drop!r}: use one of {list(_DROP_POINTS)}."
            )
        if math.isnan(self.stall) or self.stall < 0:
            raise ValueError(f"Invalid stall {self.stall!r}: use seconds >= 0.")
        if self.times is not None and self.times < 1:
            raise ValueError(f"Invalid times {self.times!r}: use an int >= 1 or None.")
        if self.address is not None and event not in ("MAIL", "RCPT"):
            raise ValueError(
                f"A rule with address={self.address!r} can only match MAIL or RCPT, "
                f"not {event}."
            )

    def matches(self, context: CommandContext) -> bool:
        """Return whether the rule's filters hold for ``context``, ignoring times."""
        if context.event != self.event:
            return False
        if self.address is not None:
            if context.address is None:
                return False
            if context.address.lower() != self.address.lower():
                return False
        if (
            self.transaction is not None
            and context.transaction_number != self.transaction
        ):
            return False
        if self.session is not None and context.session_id != self.session:
            return False
        if self.when is not None and not self.when(context):
            return False
        return True

    @property
    def reply_code(self) -> int | None:
        """Three-digit code of ``reply``, or None when there is no reply."""
        if self.reply is None:
            return None
        return int(self.reply[:3])


def validate_reply(reply: str) -> None:
    """Raise ValueError unless every line of ``reply`` is "NNN text" with one code.

    Lines are separated by "\\n" and must not contain "\\r".
    """
    lines = reply.split("\n")
    for line in lines:
        if not _REPLY_LINE.fullmatch(line):
            raise ValueError(
                f"Invalid SMTP reply {reply!r}: each line must be a code from 200 to "
                "599 followed by a space and text, such as '550 5.1.1 No such user'."
            )
    codes = {line[:3] for line in lines}
    if len(codes) > 1:
        raise ValueError(
            f"Invalid SMTP reply {reply!r}: all lines must have the same code, "
            f"found {sorted(codes)}."
        )


def reply_lines(reply: str) -> list[str]:
    """Split ``reply`` into wire lines with "code-" on every line but the last."""
    lines = reply.split("\n")
    code = lines[0][:3]
    wire_lines = []
    for index, line in enumerate(lines):
        text = line[4:]
        separator = " " if index == len(lines) - 1 else "-"
        wire_lines.append(f"{code}{separator}{text}")
    return wire_lines


def normalize_delays(
    delays: Mapping[str, float] | None, scale: float
) -> dict[str, float]:
    """Validate a delay mapping and return it with lowercase keys, multiplied by scale.

    Raises ValueError for an unknown key or a negative or non-finite value.
    """
    if math.isnan(scale) or math.isinf(scale) or scale < 0:
        raise ValueError(f"Invalid delay scale {scale!r}: use a finite number >= 0.")
    scaled: dict[str, float] = {}
    for name, seconds in (delays or {}).items():
        key = name.lower()
        if key not in DELAY_NAMES:
            raise ValueError(
                f"Invalid delay name {name!r}: use one of {sorted(DELAY_NAMES)}."
            )
        value = float(seconds)
        if math.isnan(value) or math.isinf(value) or value < 0:
            raise ValueError(
                f"Invalid delay for {name!r}: {seconds!r}. Use a finite number of "
                "seconds >= 0."
            )
        scaled[key] = value * scale
    return scaled


@dataclass(frozen=True)
class Extensions:
    """SMTP service extensions that the server advertises in its EHLO reply.

    The server enforces what it does not advertise like a strict server: a MAIL
    parameter SMTPUTF8, BODY=8BITMIME or SIZE that was not advertised gets
    "555 5.5.4". A non-ASCII address without the SMTPUTF8 parameter gets
    "553 5.6.7" (RFC 6531).
    """

    pipelining: bool = True
    smtputf8: bool = True
    eightbitmime: bool = True
    #: Whether SIZE is advertised at all.
    size: bool = True
    #: Number after SIZE. "limit" advertises the server's ``max_message_size``, or
    #: 0 (no fixed limit, RFC 1870) when it has none. None advertises a bare "SIZE".
    size_value: int | Literal["limit"] | None = "limit"
    #: Whether STARTTLS is advertised when the server runs with ``tls="starttls"``
    #: and TLS is not active yet. False keeps the command working but hides it.
    starttls: bool = True
    #: AUTH mechanisms, from "PLAIN", "LOGIN" and "XOAUTH2". Empty turns AUTH off.
    auth_mechanisms: tuple[str, ...] = ("PLAIN", "LOGIN")
    enhanced_status_codes: bool = True

    def __post_init__(self) -> None:
        mechanisms = tuple(mechanism.upper() for mechanism in self.auth_mechanisms)
        unknown = set(mechanisms) - {"PLAIN", "LOGIN", "XOAUTH2"}
        if unknown:
            raise ValueError(
                f"Invalid AUTH mechanisms {sorted(unknown)}: "
                "use PLAIN, LOGIN or XOAUTH2."
            )
        object.__setattr__(self, "auth_mechanisms", mechanisms)
        if isinstance(self.size_value, int) and self.size_value < 0:
            raise ValueError(
                f"Invalid size_value {self.size_value!r}: use an int >= 0."
            )
        if isinstance(self.size_value, str) and self.size_value != "limit":
            raise ValueError(
                f"Invalid size_value {self.size_value!r}: use an int, 'limit' or None."
            )


def reject_recipient(
    address: str,
    reply: str = DEFAULT_UNKNOWN_RECIPIENT_REPLY,
    *,
    times: int | None = None,
) -> Rule:
    """Build a rule that rejects RCPT for ``address``, by default with 550 5.1.1."""
    return Rule("RCPT", reply=reply, address=address, times=times)


def defer_recipient(
    address: str, times: int, reply: str = DEFAULT_DEFERRED_RECIPIENT_REPLY
) -> Rule:
    """Build a rule that replies to RCPT for ``address`` with a 4xx ``times`` times.

    Later RCPT commands for the address are accepted as usual.
    """
    if not reply.startswith("4"):
        raise ValueError(f"Invalid deferral reply {reply!r}: use a 4xx code.")
    return Rule("RCPT", reply=reply, address=address, times=times)


def reply_to_transaction(
    transaction: int, reply: str, *, event: str = "EOD", times: int | None = None
) -> Rule:
    """Build a rule that replies to ``event`` of the given transaction with ``reply``.

    Transactions are numbered by MAIL commands over all sessions, starting at 1.
    With the default EOD event, a 2xx reply accepts the message with that text
    and a 4xx or 5xx reply rejects it.
    """
    return Rule(event, reply=reply, transaction=transaction, times=times)


def quota_exceeded_after(
    count: int, reply: str = DEFAULT_QUOTA_REPLY, *, event: str = "MAIL"
) -> Rule:
    """Build a rule that rejects ``event`` once ``count`` messages were accepted."""
    if count < 0:
        raise ValueError(f"Invalid message count {count!r}: use an int >= 0.")
    return Rule(
        event, reply=reply, when=lambda context: context.accepted_messages >= count
    )


def drop_at(
    event: str,
    *,
    after_reply: bool = False,
    transaction: int | None = None,
    session: int | None = None,
    times: int | None = None,
) -> Rule:
    """Build a rule that closes the connection at ``event``.

    By default the connection closes before the reply. ``drop_at("EOD")`` is the
    "unknown outcome" case, where the message arrived but was never acknowledged.
    """
    return Rule(
        event,
        drop="after_reply" if after_reply else "before_reply",
        transaction=transaction,
        session=session,
        times=times,
    )


def stall_at(
    event: str,
    seconds: float = math.inf,
    *,
    then_drop: bool = False,
    transaction: int | None = None,
    session: int | None = None,
    times: int | None = None,
) -> Rule:
    """Build a rule that stops replying at ``event`` for ``seconds``.

    The server's ``max_stall`` caps the wait. Afterwards the server either handles
    the event as usual or, with ``then_drop``, closes the connection without a reply.
    ``stall_at("GREETING", then_drop=True)`` is a server that never greets.
    """
    return Rule(
        event,
        stall=seconds,
        drop="before_reply" if then_drop else "none",
        transaction=transaction,
        session=session,
        times=times,
    )
