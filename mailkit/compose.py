"""Build one :class:`email.message.EmailMessage` per DataFrame row.

Messages are built with the standard ``email`` package and serialized once, by
:func:`serialize`, for preview, dry runs and sending alike: what a preview shows
is the byte string that goes after DATA.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from dataclasses import dataclass, field
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, localtime, make_msgid
from pathlib import Path
from typing import Any, Hashable, Mapping

from .addresses import (
    ascii_domain,
    needs_smtputf8,
    parse_mailbox,
    parse_mailboxes,
    unique_addr_specs,
)
from .attachments import (
    AttachmentFile,
    check_content_type,
    guess_content_type,
    split_paths,
)
from .bodies import html_document, html_to_text, markdown_to_html
from .capabilities import ServerCapabilities
from .cells import cell_is_blank, cell_is_empty
from .errors import ConfigurationError, MessageError
from .headers import header_value_problem, policy_for
from .mime import build_body, set_body, set_boundaries
from .sources import ValueSource, value_source
from .templates import (
    Template,
    TemplateSource,
    has_literal_line_break,
    load_template,
    read_template_source,
)
from .unsubscribe import ANGLE_LIST, Unsubscribe

__all__ = ["AddressField", "MessagePlan", "Outgoing", "RenderedHead", "serialize"]

# RFC 5322 section 2.1.1: a line is at most 998 octets before CRLF.
_MAX_WIRE_LINE = 998
_HEADER_NAME = re.compile(r"[!-9;-~]+")
_CONTENT_ID = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+(?:@[A-Za-z0-9.-]+)?")


def serialize(message: EmailMessage) -> bytes:
    """Return the wire form of ``message`` with its own policy: CRLF line endings,
    lines folded to 78 octets where the syntax allows."""
    return message.as_bytes(policy=message.policy)


@dataclass(frozen=True)
class Outgoing:
    """One message ready for the SMTP transaction of one row.

    ``mail_options`` are the MAIL FROM parameters the message needs (SMTPUTF8).
    ``message`` is the built message object, for previews.
    """

    label: Hashable
    envelope_from: str
    recipients: tuple[str, ...]
    message_id: str
    data: bytes
    mail_options: tuple[str, ...] = ()
    attachments: tuple[AttachmentFile, ...] = ()
    message: EmailMessage | None = field(default=None, repr=False, compare=False)

    @property
    def size(self) -> int:
        """Length of ``data`` in octets."""
        return len(self.data)

    @property
    def attachment_summary(self) -> str:
        """The attached files as ``name (type, N bytes)``, separated by ``; ``."""
        return "; ".join(item.describe() for item in self.attachments)


@dataclass(frozen=True)
class RenderedHead:
    """The header section and envelope of one row, rendered and checked."""

    values: Mapping[str, Any]
    context: Mapping[str, Any]
    subject: str
    mailboxes: dict[str, list[Address]]
    sender: Address
    smtputf8: bool
    recipients: tuple[str, ...]
    headers: list[tuple[str, str]]


@dataclass(frozen=True)
class AddressField:
    """One address header (To, Cc, Bcc, Reply-To): its addresses and display names.

    ``names`` gives the display name of a cell that contains one address.
    """

    header: str
    option: str
    source: ValueSource
    names: ValueSource | None = None

    @property
    def fields(self) -> frozenset[str]:
        found = self.source.fields
        if self.names is not None:
            found |= self.names.fields
        return found

    def mailboxes(
        self, values: Mapping[str, Any], context: Mapping[str, Any]
    ) -> list[Address]:
        """Parse this row's addresses; raises ValueError for an invalid one."""
        cell = self.source.value_for(values, context)
        if isinstance(cell, (list, tuple)):
            if not cell:
                return []
        elif cell_is_blank(cell):
            return []
        name = None
        if self.names is not None:
            name_cell = self.names.value_for(values, context)
            name = None if cell_is_blank(name_cell) else str(name_cell)
        return parse_mailboxes(cell, name)


def _is_address_text(text: str) -> bool:
    return "@" in text


def _address_field(
    header: str, option: str, value: Any, names: str | None
) -> AddressField | None:
    if value is None:
        if names is not None:
            raise ConfigurationError(
                f"{option}_name= is set but {option}= is not: pass {option}= too."
            )
        return None
    source = value_source(option, value, fixed_text=_is_address_text)
    name_source = value_source(f"{option}_name", names) if names is not None else None
    return AddressField(header, option, source, name_source)


@dataclass(frozen=True)
class InlineImage:
    """An image shown by the HTML body with ``<img src="cid:NAME">``."""

    content_id: str
    source: ValueSource


_RESERVED_HEADERS = {
    "from": " from sender=",
    "to": " from to= (a column name or addresses)",
    "cc": " from cc= (a column name or addresses)",
    "reply-to": " from reply_to= (a column name or addresses)",
    "subject": " from subject=",
    "date": "",
    "message-id": "",
    "bcc": "; pass bcc= (a column name or addresses) instead, which sends to those "
    "addresses in RCPT TO only, because a Bcc header would show the hidden "
    "recipients to everyone",
    "resent-bcc": "; pass bcc= (a column name or addresses) instead, because a "
    "Resent-Bcc header would show the hidden recipients to everyone",
    "mime-version": "",
    "content-type": "",
    "content-transfer-encoding": "",
    "content-disposition": "",
}


def _check_mapping(option: str, value: Any, example: str) -> None:
    if value is not None and not isinstance(value, Mapping):
        raise ConfigurationError(
            f"Invalid {option}= of type {type(value).__name__}: pass a dict such as "
            f"{option}={example}."
        )


def _header_templates(
    headers: Mapping[str, TemplateSource] | None,
) -> dict[str, Template]:
    _check_mapping("headers", headers, "{'X-Campaign': 'spring'}")
    templates = {}
    for name, source in (headers or {}).items():
        if not isinstance(name, str) or not _HEADER_NAME.fullmatch(name):
            raise ConfigurationError(
                f"Invalid header name {name!r}: use printable ASCII without spaces "
                "or colons, such as 'X-Campaign'."
            )
        if name.lower() in _RESERVED_HEADERS:
            raise ConfigurationError(
                f"The header {name!r} cannot be set through headers=: mailkit sets "
                f"it itself{_RESERVED_HEADERS[name.lower()]}."
            )
        templates[name] = load_template(f"header {name}", source)
    return templates


def _attachment_types(value: Any) -> Mapping[str, str] | ValueSource | None:
    if value is None:
        return None
    if isinstance(value, Mapping):
        for key, content_type in value.items():
            problem = check_content_type(str(content_type))
            if problem:
                raise ConfigurationError(
                    f"Invalid attachment_types[{key!r}]: {problem}."
                )
        return dict(value)
    return value_source("attachment_types", value)


def _inline_images(value: Mapping[str, Any] | None) -> tuple[InlineImage, ...]:
    _check_mapping("inline_images", value, "{'logo': Path('logo.png')}")
    images = []
    for content_id, source in (value or {}).items():
        if not isinstance(content_id, str) or not _CONTENT_ID.fullmatch(content_id):
            raise ConfigurationError(
                f"Invalid inline image name {content_id!r}: use letters, digits, dots "
                "and hyphens, such as 'logo', and show it with <img src=\"cid:logo\">."
            )
        images.append(InlineImage(content_id, value_source("inline_images", source)))
    return tuple(images)


def _is_markdown_path(source: Any) -> bool:
    return isinstance(source, Path) and source.suffix.lower() in (".md", ".markdown")


@dataclass
class MessagePlan:
    """Templates and options shared by every row of one batch.

    ``server`` contains what the server offers after EHLO, and the engine sets it with
    :meth:`with_server` once the first connection is open, before any row is
    composed. Previews and dry runs use the default: no SMTPUTF8, no size limit.
    """

    subject: Template
    body: Template | None
    html: Template | None
    sender: Address
    to: AddressField
    cc: AddressField | None = None
    bcc: AddressField | None = None
    reply_to: AddressField | None = None
    headers: dict[str, Template] = field(default_factory=dict)
    markdown: bool = False
    attachments: ValueSource | None = None
    attachment_types: Mapping[str, str] | ValueSource | None = None
    inline_images: tuple[InlineImage, ...] = ()
    fill_empty: Mapping[str, Any] = field(default_factory=dict)
    max_message_size: int | None = None
    unsubscribe: Unsubscribe | None = None
    server: ServerCapabilities = field(default_factory=ServerCapabilities)

    @classmethod
    def build(
        cls,
        *,
        subject: TemplateSource,
        body: TemplateSource | None,
        html: TemplateSource | None,
        sender: str,
        to: Any = "email",
        headers: Mapping[str, TemplateSource] | None = None,
        cc: Any = None,
        bcc: Any = None,
        reply_to: Any = None,
        to_name: str | None = None,
        cc_name: str | None = None,
        reply_to_name: str | None = None,
        markdown: bool | None = None,
        attachments: Any = None,
        attachment_types: Any = None,
        inline_images: Mapping[str, Any] | None = None,
        fill_empty: Mapping[str, Any] | None = None,
        max_message_size: int | None = None,
        unsubscribe_url: Any = None,
        unsubscribe_mailto: Any = None,
    ) -> MessagePlan:
        """Check the options and compile the templates; raises ConfigurationError
        or TemplateError."""
        if not sender:
            raise ConfigurationError(
                "sender is missing: pass sender='Name <you@example.com>'."
            )
        try:
            sender_address = parse_mailbox(sender)
        except ValueError as exc:
            raise ConfigurationError(f"Invalid sender: {exc}.") from exc
        _check_mapping("fill_empty", fill_empty, "{'name': 'customer'}")
        use_markdown = _is_markdown_path(body) if markdown is None else bool(markdown)
        text_template, html_template = _body_templates(body, html, use_markdown)
        if inline_images and html_template is None:
            raise ConfigurationError(
                "inline_images= needs an HTML body (html= or a Markdown body) that "
                'shows them with <img src="cid:NAME">.'
            )
        if max_message_size is not None and (
            not isinstance(max_message_size, int) or max_message_size <= 0
        ):
            raise ConfigurationError(
                f"Invalid max_message_size {max_message_size!r}: give a number of "
                "bytes above 0."
            )
        unsubscribe = Unsubscribe.build(unsubscribe_url, unsubscribe_mailto)
        if unsubscribe is not None and any(
            name.lower() in ("list-unsubscribe", "list-unsubscribe-post")
            for name in headers or {}
        ):
            raise ConfigurationError(
                "List-Unsubscribe is set both by unsubscribe_url=/unsubscribe_mailto= "
                "and by headers=: keep one."
            )
        to_field = _address_field("To", "to", to, to_name)
        if to_field is None:
            raise ConfigurationError("to= is missing: pass the recipient column name.")
        subject_template = load_template("subject", subject)
        header_templates = _header_templates(headers)
        for template in (subject_template, *header_templates.values()):
            if has_literal_line_break(template):
                raise ConfigurationError(
                    f"The {template.name} template contains a line break in its own "
                    "text, and a header must be one line: remove it, or use "
                    "{%- -%} to trim the whitespace around template tags."
                )
        return cls(
            subject=subject_template,
            body=text_template,
            html=html_template,
            sender=sender_address,
            to=to_field,
            cc=_address_field("Cc", "cc", cc, cc_name),
            bcc=_address_field("Bcc", "bcc", bcc, None),
            reply_to=_address_field("Reply-To", "reply_to", reply_to, reply_to_name),
            headers=header_templates,
            markdown=use_markdown,
            attachments=(
                value_source("attachments", attachments)
                if attachments is not None
                else None
            ),
            attachment_types=_attachment_types(attachment_types),
            inline_images=_inline_images(inline_images),
            fill_empty=dict(fill_empty or {}),
            max_message_size=max_message_size,
            unsubscribe=unsubscribe,
        )

    def with_server(self, server: ServerCapabilities) -> MessagePlan:
        """Return a copy of this plan for a server with these capabilities."""
        return dataclasses.replace(self, server=server)

    # -- what the plan reads -------------------------------------------------

    @property
    def templates(self) -> list[Template]:
        found = [self.subject, *self.headers.values()]
        for template in (self.body, self.html):
            if template is not None:
                found.append(template)
        for source in self.value_sources:
            if source.template is not None:
                found.append(source.template)
        return found

    @property
    def address_fields(self) -> list[AddressField]:
        return [f for f in (self.to, self.cc, self.bcc, self.reply_to) if f is not None]

    @property
    def value_sources(self) -> list[ValueSource]:
        """Every per-row option value: addresses, names, attachments, images."""
        sources = []
        for address_field in self.address_fields:
            sources.append(address_field.source)
            if address_field.names is not None:
                sources.append(address_field.names)
        if self.attachments is not None:
            sources.append(self.attachments)
        if isinstance(self.attachment_types, ValueSource):
            sources.append(self.attachment_types)
        sources += [image.source for image in self.inline_images]
        if self.unsubscribe is not None:
            sources += self.unsubscribe.sources
        return sources

    @property
    def header_fields(self) -> frozenset[str]:
        """Columns whose values can end up in a header."""
        found = set(self.subject.fields)
        for template in self.headers.values():
            found |= template.fields
        for address_field in self.address_fields:
            found |= address_field.fields
        if self.unsubscribe is not None:
            for source in self.unsubscribe.sources:
                found |= source.fields
        return frozenset(found)

    @property
    def to_column(self) -> str | None:
        """The column that contains the To addresses, or None for a fixed value
        or a template."""
        return self.to.source.column if self.to.source.kind == "column" else None

    def recipient_values(self, df: Any) -> list[Any]:
        """Return the To value of every row of ``df``, in order, before parsing."""
        source = self.to.source
        if source.kind == "column":
            return df[source.column].tolist()
        if source.kind == "fixed":
            return [source.value] * len(df)
        columns = {str(name): df[name].tolist() for name in df.columns}
        rows = (
            {name: values[i] for name, values in columns.items()}
            for i in range(len(df))
        )
        return [self.recipient_text(row) for row in rows]

    def recipient_text(self, row: Mapping[str, Any]) -> str:
        """Return the To value of a row as text, for results of rows never composed."""
        try:
            value = self.to.source.value_for(row, self.context(row))
        except Exception:  # noqa: BLE001 - only a label for a row that failed
            return ""
        return "" if cell_is_blank(value) else str(value).strip()

    def new_message_id(self) -> str:
        """Return a new Message-ID on the sender's domain, unique across runs."""
        try:
            domain = ascii_domain(self.sender.domain)
        except ValueError:
            domain = self.sender.domain
        return make_msgid(domain=domain)

    # -- per row ---------------------------------------------------------------

    def prepare_row(self, row: Mapping[str, Any]) -> dict[str, Any]:
        """Return the row as templates see it.

        Empty cells (NaN, NaT, pandas.NA) become None, so ``{% if x %}`` and
        ``x or "default"`` treat them as missing, and the ``fill_empty`` defaults
        replace blank cells.
        """
        values = {
            name: None if cell_is_empty(value) else value for name, value in row.items()
        }
        for column, default in self.fill_empty.items():
            if column in values and cell_is_blank(values[column]):
                values[column] = default
        return values

    def context(self, values: Mapping[str, Any]) -> dict[str, Any]:
        context = dict(values)
        context["row"] = values
        return context

    def attachment_files(
        self, values: Mapping[str, Any], context: Mapping[str, Any]
    ) -> list[AttachmentFile]:
        """Return the files this row attaches.

        Raises MessageError for a missing or unreadable file.
        """
        if self.attachments is None:
            return []
        paths = split_paths(self.attachments.value_for(values, context))
        types: list[str | None] = [None] * len(paths)
        overrides = None
        if isinstance(self.attachment_types, ValueSource):
            given = split_paths(self.attachment_types.value_for(values, context))
            if given and len(given) != len(paths):
                raise MessageError(
                    f"attachment_types gives {len(given)} type(s) for {len(paths)} "
                    "attachment(s): give one type per path, in the same order."
                )
            types = list(given) or types
        else:
            overrides = self.attachment_types
        files = []
        for path_text, content_type in zip(paths, types):
            path = Path(path_text).expanduser()
            if content_type is None:
                content_type = guess_content_type(path.name, overrides)
            elif check_content_type(content_type):
                raise MessageError(
                    f"Invalid attachment type: {check_content_type(content_type)}."
                )
            files.append(_file_info(path, content_type.strip().lower(), None))
        return files

    def inline_files(
        self, values: Mapping[str, Any], context: Mapping[str, Any]
    ) -> list[AttachmentFile]:
        """Return the inline images of this row.

        Raises MessageError for a missing or unreadable file.
        """
        files = []
        for image in self.inline_images:
            paths = split_paths(image.source.value_for(values, context))
            if len(paths) != 1:
                raise MessageError(
                    f"The inline image {image.content_id!r} needs exactly one path, "
                    f"got {len(paths)}."
                )
            path = Path(paths[0]).expanduser()
            files.append(
                _file_info(path, guess_content_type(path.name), image.content_id)
            )
        return files

    def render_head(self, row: Mapping[str, Any]) -> RenderedHead:
        """Render and check everything of one row that goes into the header
        section or the envelope; the body is not rendered.

        Preflight calls this for every row, so a row whose headers cannot be
        built fails before any connection. Raises MessageError, or a jinja2 or
        ValueError exception from a template.
        """
        values = self.prepare_row(row)
        context = self.context(values)
        subject = _header_text("Subject", self.subject.render(context))
        mailboxes = {
            f.header: self._mailboxes(f, values, context) for f in self.address_fields
        }
        smtputf8 = self._needs_smtputf8(mailboxes)
        sender = self.sender if smtputf8 else _ascii_address(self.sender)
        if not smtputf8:
            mailboxes = {
                header: [_ascii_address(item) for item in items]
                for header, items in mailboxes.items()
            }
        recipients = tuple(
            unique_addr_specs(
                item.addr_spec
                for header in ("To", "Cc", "Bcc")
                for item in mailboxes.get(header, [])
            )
        )
        if not recipients:
            raise MessageError("The row has no recipient address in to=, cc= or bcc=.")
        headers = []
        if self.unsubscribe is not None:
            for name, value in self.unsubscribe.headers(values, context):
                headers.append((name, _header_text(name, value)))
        for name, template in self.headers.items():
            headers.append((name, _header_text(name, template.render(context))))
        return RenderedHead(
            values=values,
            context=context,
            subject=subject,
            mailboxes=mailboxes,
            sender=sender,
            smtputf8=smtputf8,
            recipients=recipients,
            headers=headers,
        )

    def compose(
        self,
        label: Hashable,
        row: Mapping[str, Any],
        *,
        message_id: str | None = None,
        date: dt.datetime | None = None,
    ) -> Outgoing:
        """Render the templates for one row and build its message.

        ``message_id`` and ``date`` replace the generated Message-ID and Date, so a
        preview can reproduce the bytes of a message that was sent. Raises
        MessageError for a row that cannot be sent to this server. Rows that
        preflight did not catch raise jinja2 or ValueError exceptions. The engine
        records each of them as that row's failure.
        """
        head = self.render_head(row)
        values, context = head.values, head.context
        mailboxes, sender = head.mailboxes, head.sender
        smtputf8, recipients = head.smtputf8, head.recipients
        message = EmailMessage(policy=policy_for(smtputf8))
        message["From"] = sender
        for header in ("To", "Cc", "Reply-To"):
            if mailboxes.get(header):
                message[header] = mailboxes[header]
        message["Subject"] = head.subject
        message["Date"] = _date_header(date)
        message_id = message_id or self.new_message_id()
        message["Message-ID"] = message_id
        for name, value in head.headers:
            message[name] = value
        text, html = self._bodies(context)
        files = self.attachment_files(values, context)
        inline = self.inline_files(values, context) if html is not None else []
        body = build_body(
            text=text,
            html=html,
            inline=[(item, _read(item)) for item in inline],
            attachments=[(item, _read(item)) for item in files],
            policy=message.policy,
        )
        set_body(message, body)
        set_boundaries(message, message_id)
        data = serialize(message)
        _check_wire_form(data)
        self._check_size(len(data))
        return Outgoing(
            label=label,
            envelope_from=sender.addr_spec,
            recipients=recipients,
            message_id=message_id,
            data=data,
            mail_options=("SMTPUTF8",) if smtputf8 else (),
            attachments=tuple(files + inline),
            message=message,
        )

    def _mailboxes(
        self,
        address_field: AddressField,
        values: Mapping[str, Any],
        context: Mapping[str, Any],
    ) -> list[Address]:
        try:
            return address_field.mailboxes(values, context)
        except ValueError as exc:
            raise MessageError(
                f"Invalid {address_field.option}= address: {exc}."
            ) from exc

    def _needs_smtputf8(self, mailboxes: Mapping[str, list[Address]]) -> bool:
        addresses = [
            self.sender,
            *(item for items in mailboxes.values() for item in items),
        ]
        utf8 = [item.addr_spec for item in addresses if needs_smtputf8(item)]
        if utf8 and not self.server.smtputf8:
            raise MessageError(
                f"The server does not offer SMTPUTF8, which the address {utf8[0]} "
                "needs because its local part (before the @) is not ASCII; the row "
                "was not sent. Use an ASCII address or a server that offers SMTPUTF8."
            )
        return bool(utf8)

    def _bodies(self, context: Mapping[str, Any]) -> tuple[str, str | None]:
        html = self.html.render(context) if self.html is not None else None
        if self.markdown and html is not None:
            html = html_document(markdown_to_html(html))
        if self.body is not None:
            text = self.body.render(context)
        else:
            text = html_to_text(html or "")
        if not text.endswith("\n"):
            text += "\n"
        if html is not None and not html.endswith("\n"):
            html += "\n"
        return text, html

    def _check_size(self, size: int) -> None:
        limits = [
            (limit, what)
            for limit, what in (
                (self.server.size_limit, "the server's limit (SIZE)"),
                (self.max_message_size, "max_message_size"),
            )
            if limit
        ]
        for limit, what in limits:
            if size > limit:
                raise MessageError(
                    f"The message is {size} bytes, over {what} of {limit} bytes; it "
                    "was not sent. Attach smaller files or share them by link."
                )


def _body_templates(
    body: TemplateSource | None, html: TemplateSource | None, markdown: bool
) -> tuple[Template | None, Template | None]:
    if markdown:
        if body is None:
            raise ConfigurationError(
                "markdown=True needs body= with the Markdown text."
            )
        if html is not None:
            raise ConfigurationError(
                "A Markdown body makes the HTML part itself: pass either html= or a "
                "Markdown body, not both."
            )
        source = read_template_source("body", body)
        return (
            load_template("body", source),
            load_template("body", source, kind="markdown"),
        )
    if body is None and html is None:
        raise ConfigurationError(
            "body= is missing: pass a text body, an html= body, or both."
        )
    text = load_template("body", body) if body is not None else None
    html_template = load_template("html", html, html=True) if html is not None else None
    return text, html_template


def _header_text(name: str, rendered: str) -> str:
    value = rendered.strip()
    problem = header_value_problem(value)
    if problem:
        raise MessageError(f"The {name} header cannot be built: {problem}.")
    if name.lower() == "list-unsubscribe" and not ANGLE_LIST.fullmatch(value):
        raise MessageError(
            f"The List-Unsubscribe value {value!r} is invalid: write each URL in "
            "angle brackets, separated by commas, such as <https://example.com/u>."
        )
    return value


def _ascii_address(address: Address) -> Address:
    try:
        domain = ascii_domain(address.domain)
    except ValueError as exc:
        raise MessageError(f"Invalid address {address.addr_spec!r}: {exc}.") from exc
    if domain == address.domain:
        return address
    return Address(
        display_name=address.display_name, username=address.username, domain=domain
    )


def _date_header(date: dt.datetime | None) -> str:
    if date is None:
        return format_datetime(localtime())
    if date.tzinfo is None:
        date = localtime(date)
    return format_datetime(date)


def _file_info(path: Path, content_type: str, content_id: str | None) -> AttachmentFile:
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise MessageError(
            f"The attachment {str(path)!r} cannot be read: {exc.strerror}."
        ) from exc
    if not path.is_file():
        raise MessageError(f"The attachment {str(path)!r} is not a file.")
    return AttachmentFile(
        path=path,
        filename=path.name,
        content_type=content_type,
        size=size,
        content_id=content_id,
    )


def _read(item: AttachmentFile) -> bytes:
    try:
        return item.read()
    except OSError as exc:
        raise MessageError(
            f"The attachment {str(item.path)!r} cannot be read: {exc.strerror}."
        ) from exc


def _check_wire_form(data: bytes) -> None:
    """Raise MessageError if the bytes break RFC 5322 line rules; a last guard."""
    if data.count(b"\n") != data.count(b"\r\n") or data.count(b"\r") != data.count(
        b"\r\n"
    ):
        raise MessageError("The message has a line ending other than CRLF.")
    longest = max(len(line) for line in data.split(b"\r\n"))
    if longest > _MAX_WIRE_LINE:
        raise MessageError(
            f"The message has a line of {longest} octets, over the limit of "
            f"{_MAX_WIRE_LINE}; shorten the header value that makes it."
        )
