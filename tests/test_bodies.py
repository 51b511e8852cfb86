"""Bodies on the wire: UTF-8, long lines, HTML-only, Markdown and tables."""

from __future__ import annotations

import pandas as pd
import pytest

import mailkit
from wire import assert_wire_form, parse, text_of

SENDER = "Accounts team <accounts@example.com>"


def test_c03_utf8_body_preview_and_send(server):
    df = pd.DataFrame({"name": ["Jürgen"], "email": ["bob@example.com"]})
    options = dict(
        subject="Grüße",
        body="Hallo {{ name }}, schöne Grüße – 10 € Rabatt\n",
        sender=SENDER,
    )
    shown = mailkit.preview(df, **options)
    assert shown.text == "Hallo Jürgen, schöne Grüße – 10 € Rabatt\n"
    mailkit.send_bulk(df, smtp=server.url, **options)
    (received,) = server.messages
    assert_wire_form(received.data)
    message = parse(received.data)
    assert message.get_content_type() == "text/plain"
    assert message.get_content_charset() == "utf-8"
    assert message["Content-Transfer-Encoding"] in ("quoted-printable", "base64")
    assert text_of(message) == "Hallo Jürgen, schöne Grüße – 10 € Rabatt\n"


def test_c04_long_html_line(server):
    paragraph = "<p>" + " ".join(f"word{i}" for i in range(500))[:2993] + "</p>"
    assert len(paragraph) == 3000
    df = pd.DataFrame({"email": ["a@example.com"]})
    mailkit.send_bulk(
        df,
        subject="Hi",
        body="Text\n",
        html=paragraph + "\n",
        sender=SENDER,
        smtp=server.url,
    )
    data = server.messages[0].data
    assert_wire_form(data)
    html = parse(data).get_body(("html",))
    assert html["Content-Transfer-Encoding"] in ("quoted-printable", "base64")
    assert text_of(html) == paragraph + "\n"


def test_c04_line_over_998_octets_not_characters(server):
    text = "Ça va? " * 130
    assert len(text) < 998 < len(text.encode("utf-8"))
    df = pd.DataFrame({"email": ["a@example.com"], "line": [text]})
    mailkit.send_bulk(
        df, subject="Hi", body="{{ line }}\n", sender=SENDER, smtp=server.url
    )
    data = server.messages[0].data
    assert_wire_form(data)
    assert max(len(line) for line in data.split(b"\r\n")) <= 78
    assert text_of(parse(data)) == text + "\n"


def test_dots_and_crlf_preserved(server):
    body = ".\n..leading dots\nFrom the start\nend.\n"
    df = pd.DataFrame({"email": ["a@example.com"]})
    mailkit.send_bulk(df, subject="Dots", body=body, sender=SENDER, smtp=server.url)
    data = server.messages[0].data
    assert_wire_form(data)
    assert text_of(parse(data)) == body


def test_html_only_derives_text_part(server):
    html = (
        "<html><head><style>p {color: red}</style></head><body>"
        "<h1>Hello {{ name }}</h1>"
        "<p>See <a href='https://example.com/x'>the report</a>."
        "</p><ul><li>one</li><li>two</li></ul></body></html>"
    )
    df = pd.DataFrame({"email": ["a@example.com"], "name": ["Ann <b>"]})
    mailkit.send_bulk(df, subject="Hi", html=html, sender=SENDER, smtp=server.url)
    message = parse(server.messages[0].data)
    assert message.get_content_type() == "multipart/alternative"
    text = text_of(message.get_body(("plain",)))
    assert text == (
        "Hello Ann <b>\n\nSee the report (https://example.com/x).\n\n- one\n- two\n"
    )
    assert "Hello Ann &lt;b&gt;" in text_of(message.get_body(("html",)))


def test_markdown_body_makes_text_and_html(server, tmp_path):
    template = tmp_path / "body.md"
    template.write_text(
        "# Hello {{ name }}\n\nYour total is **{{ total | number(2) }}**.\n\n"
        "- first\n- second\n",
        encoding="utf-8",
    )
    df = pd.DataFrame(
        {"email": ["a@example.com"], "name": ["*Bob* <i>"], "total": [12.5]}
    )
    mailkit.send_bulk(df, subject="Hi", body=template, sender=SENDER, smtp=server.url)
    message = parse(server.messages[0].data)
    text = text_of(message.get_body(("plain",)))
    assert text == (
        "# Hello *Bob* <i>\n\nYour total is **12.50**.\n\n- first\n- second\n"
    )
    html = text_of(message.get_body(("html",)))
    assert "<h1>Hello *Bob* &lt;i&gt;</h1>" in html
    assert "<strong>12.50</strong>" in html
    assert "<li>first</li>" in html


def test_markdown_with_html_rejected():
    df = pd.DataFrame({"email": ["a@example.com"]})
    with pytest.raises(mailkit.ConfigurationError, match="either html= or a Markdown"):
        mailkit.validate(
            df, subject="Hi", body="# x", html="<p>x</p>", markdown=True, sender=SENDER
        )


def test_missing_body_rejected():
    df = pd.DataFrame({"email": ["a@example.com"]})
    with pytest.raises(mailkit.ConfigurationError, match="body= is missing"):
        mailkit.validate(df, subject="Hi", sender=SENDER)


def test_table_filter_html_and_text(server):
    items = pd.DataFrame(
        {"item": ["Äpfel", "Pears"], "qty": [3, 12], "price": [1.5, None]}
    )
    styled = items.style.map(lambda v: "color: red" if v == 12 else "", subset=["qty"])
    df = pd.DataFrame(
        {"email": ["a@example.com", "b@example.com"], "items": [items, styled]}
    )
    mailkit.send_bulk(
        df,
        subject="Order",
        body="Your order:\n{{ items | table }}\n",
        html="<p>Your order:</p>{{ items | table }}",
        sender=SENDER,
        mode="fast",
        smtp=server.url,
    )
    by_recipient = {m.recipients[0]: parse(m.data) for m in server.messages}
    plain = by_recipient["a@example.com"]
    assert text_of(plain.get_body(("plain",))) == (
        "Your order:\n"
        "item   qty  price\n"
        "-----  ---  -----\n"
        "Äpfel    3    1.5\n"
        "Pears   12\n"
    )
    html = text_of(plain.get_body(("html",)))
    assert "<style" not in html
    assert "<td style=" in html
    assert ">Äpfel</td>" in html
    assert "nan" not in html
    styled_html = by_recipient["b@example.com"].get_body(("html",)).get_content()
    assert "color: red" in styled_html
    assert "class=" not in styled_html
    styled_text = by_recipient["b@example.com"].get_body(("plain",)).get_content()
    assert "nan" not in styled_text
    assert "Pears" in styled_text
