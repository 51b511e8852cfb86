"""mailkit.widgets.Composer: templates, live preview, preflight table, test send."""

from __future__ import annotations

import email
import email.policy
import html
import re

import pandas as pd
import pytest

import mailkit
from mailkit.widgets import Composer, SMTPSettings
from mailkit.widgets.composer import field_expression

SENDER = "Accounts team <accounts@example.com>"


@pytest.fixture
def people() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "email": ["ann@example.com", "bo@example.com", "cy@example.com"],
            "first_name": ["Ann", "Bo", "Cy"],
            "First Name": ["A", "B", "C"],
            "amount": ["12", "7.50", "<b>99</b>"],
        },
        index=pd.Index(["a", "b", "c"], name="key"),
    )


def _composer(df, **fields) -> Composer:
    values = {
        "sender": SENDER,
        "subject": "Hi {{ first_name }}",
        "body": "Hello {{ first_name }}, you owe {{ amount }}.",
    }
    values.update(fields)
    return Composer(df, **values)


def _parse(data: bytes):
    return email.message_from_bytes(data, policy=email.policy.default)


def test_composer_lists_columns(people):
    composer = _composer(people)

    names = [button.description for button in composer.column_buttons]
    assert names == ["email", "first_name", "First Name", "amount"]
    assert composer.to.value == "email"
    assert list(composer.to.options) == names


def test_composer_insert_column(people):
    composer = _composer(people, body="Hello")

    composer.insert_column("first_name")
    assert composer.body.value == "Hello {{ first_name }}"
    composer.insert_target.value = "subject"
    composer.column_buttons[2].click()
    assert composer.subject.value == 'Hi {{ first_name }} {{ row["First Name"] }}'


@pytest.mark.parametrize(
    ("column", "expression"),
    [
        ("amount", "{{ amount }}"),
        ("First Name", '{{ row["First Name"] }}'),
        ("in", '{{ row["in"] }}'),
        ("class", '{{ row["class"] }}'),
        ("2nd", '{{ row["2nd"] }}'),
    ],
)
def test_field_expression(column, expression):
    assert field_expression(column) == expression


def test_composer_inserted_field_renders(people):
    composer = _composer(people, subject="")
    composer.insert_column("First Name", into="subject")

    message = _parse(mailkit.preview(people, "b", **composer.options()).data)

    assert message["Subject"] == "B"


def test_composer_preview_shows_row(people):
    composer = _composer(people)

    assert "Hello Ann, you owe 12." in composer.preview.value
    assert "ann@example.com" in composer.preview.value
    composer.row.value = 1
    assert "Hello Bo, you owe 7.50." in composer.preview.value
    assert "bo@example.com" in composer.row_label.value
    assert "index &#x27;b&#x27;" in composer.row_label.value


def test_composer_preview_follows_typing(people):
    composer = _composer(people)

    composer.subject.value = "Invoice for {{ first_name }}"

    assert "Invoice for Ann" in composer.preview.value
    composer.body.value = "Dear {{ first_name }}"
    assert "Dear Ann" in composer.preview.value


def _wire_lines(data: bytes) -> list[bytes]:
    # Date, Message-ID and the MIME boundary are new for every rendering; the
    # rest must match.
    data = re.sub(rb"={15}\d+==|=_mailkit_[0-9a-f]{32}", b"BOUNDARY", data)
    return [
        line
        for line in data.split(b"\r\n")
        if not line.startswith((b"Date:", b"Message-ID:"))
    ]


def test_composer_preview_matches_wire_bytes(people):
    composer = _composer(people, html="<p>Hi {{ first_name }}</p>")
    composer.row.value = 2

    shown = re.search(
        r'<pre class="mailkit-wire"[^>]*>(.*?)</pre>', composer.preview.value, re.S
    )
    outgoing = mailkit.preview(people, "c", **composer.options())

    assert shown is not None
    shown_bytes = html.unescape(shown.group(1)).encode("ascii")
    assert _wire_lines(shown_bytes) == _wire_lines(outgoing.data)
    assert f"Wire bytes ({len(shown_bytes)} bytes" in composer.preview.value
    assert ">Hi Cy</td>" in composer.preview.value


def test_composer_preview_html_sandboxed(people):
    composer = _composer(people, html="<p>Total {{ amount }}</p><script>alert(1)</script>")
    composer.row.value = 2

    value = composer.preview.value

    assert '<iframe sandbox=""' in value
    # The HTML part is inside srcdoc, escaped once more; the cell was escaped
    # by the HTML template's autoescaping.
    assert "&amp;lt;b&amp;gt;99&amp;lt;/b&amp;gt;" in value
    assert "<script>" not in value


def test_composer_preview_escapes_text(people):
    composer = _composer(people)
    composer.row.value = 2

    assert "you owe &lt;b&gt;99&lt;/b&gt;." in composer.preview.value
    assert "<b>99</b>" not in composer.preview.value


def test_composer_preview_template_error(people):
    composer = _composer(people)

    composer.body.value = "Hello {{ first_name "

    assert "Syntax error in the body template" in composer.preview.value
    assert "Traceback" not in composer.preview.value
    assert "mailkit-error" in composer.preview.value


def test_composer_preview_unknown_field(people):
    composer = _composer(people)

    composer.body.value = "Hello {{ frist_name }}"

    assert "cannot be sent" in composer.preview.value
    assert "frist_name" in composer.preview.value
    assert "did you mean" in composer.preview.value


def test_composer_missing_sender(people):
    composer = _composer(people, sender="")

    with pytest.raises(mailkit.ConfigurationError, match="sender is missing"):
        composer.options()
    assert "sender is missing" in composer.preview.value
    assert "Not checked" in composer.problems.value


def test_composer_empty_message(people):
    composer = _composer(people, body="")

    with pytest.raises(mailkit.ConfigurationError, match="message is empty"):
        composer.options()


def test_composer_html_only(people):
    composer = _composer(people, body="", html="<p>Hi {{ first_name }}</p>")

    assert composer.options()["html"] == "<p>Hi {{ first_name }}</p>"
    assert composer.options()["body"] is None
    assert '<iframe sandbox=""' in composer.preview.value
    # The text part is derived from the HTML.
    assert "Text part" in composer.preview.value
    assert "Hi Ann" in composer.preview.value


def test_composer_options_for_send_bulk(people):
    composer = _composer(people)

    assert composer.options() == {
        "subject": "Hi {{ first_name }}",
        "body": "Hello {{ first_name }}, you owe {{ amount }}.",
        "html": None,
        "to": "email",
        "sender": SENDER,
    }
    composer.attachments.value = "amount"
    assert composer.options()["attachments"] == "amount"


@pytest.fixture
def with_files(people, tmp_path):
    invoice = tmp_path / "invoice-a.pdf"
    invoice.write_bytes(b"%PDF-1.4 example invoice\n" * 40)
    terms = tmp_path / "terms.txt"
    terms.write_text("Terms and conditions\n", encoding="utf-8")
    frame = people.copy()
    frame["files"] = [f"{invoice};{terms}", str(terms), str(terms)]
    return frame, invoice, terms


def test_composer_preview_lists_attachments(with_files):
    frame, invoice, terms = with_files

    composer = _composer(frame, attachments="files")

    assert composer.attachments.value == "files"
    assert "invoice-a.pdf (application/pdf, 1000 bytes)" in composer.preview.value
    assert "terms.txt (text/plain, 21 bytes)" in composer.preview.value
    assert "No problems found" in composer.problems.value


def test_composer_missing_attachment_is_problem(with_files):
    frame, invoice, terms = with_files
    frame.loc["c", "files"] = str(terms.parent / "missing.pdf")
    composer = _composer(frame)

    composer.attachments.value = "files"

    assert "missing.pdf" in composer.problems.value
    assert "1 problem(s) in 1 row(s)" in composer.problems.value
    composer.row.value = 2
    assert "cannot be sent" in composer.preview.value


def test_composer_unknown_attachments_column(people):
    with pytest.raises(mailkit.ConfigurationError, match="attachments column"):
        _composer(people, attachments="files")


def test_composer_problems_table(people):
    bad = people.copy()
    bad.loc["b", "email"] = "not-an-address"
    bad.loc["c", "first_name"] = None

    composer = _composer(bad)
    problems = composer.check()

    assert list(problems["row"]) == ["b", "c"]
    assert "2 problem(s) in 2 row(s)" in composer.problems.value
    assert "not-an-address" in composer.problems.value
    assert "the cell is empty" in composer.problems.value


def test_composer_problems_follow_edits(people):
    composer = _composer(people)
    assert "No problems found in 3 row(s)" in composer.problems.value

    composer.subject.value = "Hi {{ nickname }}"

    assert "nickname" in composer.problems.value
    assert "1 problem(s)" in composer.problems.value


def test_composer_large_frame_checked_on_click():
    df = pd.DataFrame({"email": [f"user{i}@example.com" for i in range(2_500)]})
    df.loc[7, "email"] = "broken"
    composer = Composer(df, sender=SENDER, subject="Hi", body="Body")
    assert composer.problems.value == ""

    composer.check_button.click()

    assert "1 problem(s) in 1 row(s)" in composer.problems.value


def test_composer_recipient_column_choice(people):
    df = people.rename(columns={"email": "Work mail"})

    composer = _composer(df)

    assert composer.to.value == "Work mail"
    with pytest.raises(mailkit.ConfigurationError, match="not in the DataFrame"):
        Composer(df, to="email")


def test_composer_empty_frame():
    df = pd.DataFrame({"email": pd.Series([], dtype=str)})

    composer = Composer(df, sender=SENDER, subject="Hi", body="Body")

    assert "no rows" in composer.preview.value
    assert composer.row.disabled is True


def test_composer_rejects_non_frame():
    with pytest.raises(TypeError, match="DataFrame"):
        Composer([{"email": "a@example.com"}])


def test_send_test_goes_to_sender(server, people):
    settings = SMTPSettings(server.url)
    composer = _composer(people, settings=settings)
    composer.row.value = 1

    results = composer.send_test()

    assert results["status"].tolist() == ["sent"]
    assert len(server.messages) == 1
    received = server.messages[0]
    assert received.recipients == ("accounts@example.com",)
    message = received.message
    assert message["To"] == "accounts@example.com"
    assert message["Subject"] == "Hi Bo"
    assert "Hello Bo, you owe 7.50." in message.get_body(("plain",)).get_content()
    assert "Test message for row 2 sent to accounts@example.com" in (
        composer.test_status.value
    )
    assert people.loc["b", "email"] == "bo@example.com"


def test_send_test_button_runs_in_background(server, people):
    composer = _composer(people, settings=SMTPSettings(server.url))

    composer.test_button.click()

    assert composer.wait(20)
    assert [m.recipients for m in server.messages] == [("accounts@example.com",)]
    assert composer.test_button.disabled is False


def test_send_test_with_attachment(server, with_files):
    frame, invoice, terms = with_files
    composer = _composer(frame, settings=SMTPSettings(server.url), attachments="files")

    results = composer.send_test(0)

    assert results["status"].tolist() == ["sent"]
    message = server.messages[0].message
    received = {
        part.get_filename(): part.get_content() for part in message.iter_attachments()
    }
    assert received["invoice-a.pdf"] == invoice.read_bytes()
    assert received["terms.txt"].replace("\r\n", "\n") == terms.read_text()


def test_send_test_without_settings(people):
    composer = _composer(people)

    assert composer.send_test() is None
    assert "No SMTP settings" in composer.test_status.value


def test_send_test_server_down(people):
    composer = _composer(people, settings=SMTPSettings("smtp://127.0.0.1:9"))

    assert composer.send_test() is None

    assert "The test message was not sent" in composer.test_status.value
    assert "Traceback" not in composer.test_status.value


def test_send_test_row_with_problem(server, people):
    bad = people.copy()
    bad.loc["a", "first_name"] = None
    composer = _composer(bad, settings=SMTPSettings(server.url))

    assert composer.send_test(0) is None

    assert "The test message was not sent" in composer.test_status.value
    assert "first_name" in composer.test_status.value
    assert server.messages == []
