"""Build one :class:`email.message.EmailMessage` per DataFrame row.

Messages are built with the standard ``email`` package and serialized once, by
:func:`serialize`, for both preview and sending: what a preview shows is the byte
string that goes after DATA.
"""

from __future__ import annotations

import email.policy
from dataclasses import dataclass, field
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, localtime, make_msgid
from typing import Any, Hashable, Mapping

from .addresses import parse_mailbox, split_addresses
from .errors import ConfigurationError
from .templates import Template, TemplateSource, load_template

__all__ = ["MessagePlan", "Outgoing", "serialize"]

# The body is encoded as 7bit, quoted-printable or base64 so that the message
# needs neither 8BITMIME nor SMTPUTF8 and no line exceeds 78 octets.
_BUILD_POLICY = email.policy.SMTP.clone(cte_type="7bit")
_WIRE_POLICY = email.policy.SMTP


def serialize(message: EmailMessage) -> bytes:
    """Return the wire form of ``message``: CRLF line endings, headers 7-bit."""
    return message.as_bytes(policy=_WIRE_POLICY)


@dataclass(frozen=True)
class Outgoing:
    """One message ready for the SMTP transaction of one row."""

    label: Hashable
    envelope_from: str
    recipients: tuple[str, ...]
    message_id: str
    data: bytes


@dataclass
class MessagePlan:
    """Templates and options shared by every row of one batch.

    ``to`` names the column that holds the recipient address(es) of a row.
    """

    subject: Template
    body: Template
    html: Template | None
    sender: Address
    to: str
    headers: dict[str, Template] = field(default_factory=dict)

    @classmethod
    def build(
        cls,
        *,
        subject: TemplateSource,
        body: TemplateSource,
        html: TemplateSource | None,
        sender: str,
        to: str,
        headers: Mapping[str, TemplateSource] | None = None,
    ) -> MessagePlan:
        if not sender:
            raise ConfigurationError(
                "sender is missing: pass sender='Name <you@example.com>'."
            )
        try:
            sender_address = parse_mailbox(sender)
        except ValueError as exc:
            raise ConfigurationError(f"Invalid sender: {exc}.") from exc
        header_templates = {}
        for name, source in (headers or {}).items():
            if name.lower() in _RESERVED_HEADERS:
                raise ConfigurationError(
                    f"The header {name!r} cannot be set through headers=: mailkit sets "
                    f"it itself{_RESERVED_HEADERS[name.lower()]}."
                )
            header_templates[name] = load_template(f"header {name}", source)
        return cls(
            subject=load_template("subject", subject),
            body=load_template("body", body),
            html=load_template("html", html, html=True) if html is not None else None,
            sender=sender_address,
            to=to,
            headers=header_templates,
        )

    @property
    def templates(self) -> list[Template]:
        found = [self.subject, self.body, *self.headers.values()]
        if self.html is not None:
            found.append(self.html)
        return found

    def new_message_id(self) -> str:
        """Return a new Message-ID on the sender's domain, unique across runs."""
        return make_msgid(domain=self.sender.domain)

    def compose(
        self, label: Hashable, row: Mapping[str, Any], *, message_id: str | None = None
    ) -> Outgoing:
        """Render the templates for one row and build its message.

        Raises jinja2 and ValueError exceptions for rows that preflight did not
        catch; the engine records them as that row's failure.
        """
        context = dict(row)
        context["row"] = row
        recipients = tuple(split_addresses(str(row[self.to])))
        message = EmailMessage(policy=_BUILD_POLICY)
        message["From"] = self.sender
        message["To"] = [_address(item) for item in recipients]
        message["Subject"] = self.subject.render(context).strip()
        message["Date"] = format_datetime(localtime())
        message_id = message_id or self.new_message_id()
        message["Message-ID"] = message_id
        for name, template in self.headers.items():
            message[name] = template.render(context).strip()
        message.set_content(self.body.render(context))
        if self.html is not None:
            message.add_alternative(self.html.render(context), subtype="html")
        return Outgoing(
            label=label,
            envelope_from=self.sender.addr_spec,
            recipients=recipients,
            message_id=message_id,
            data=serialize(message),
        )


def _address(addr_spec: str) -> Address:
    local_part, _, domain = addr_spec.rpartition("@")
    return Address(username=local_part, domain=domain)


_RESERVED_HEADERS = {
    "from": " from sender=",
    "to": " from the to= column",
    "subject": " from subject=",
    "date": "",
    "message-id": "",
    "bcc": "; a Bcc header would show the hidden recipients to everyone",
    "mime-version": "",
    "content-type": "",
    "content-transfer-encoding": "",
}
