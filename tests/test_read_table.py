"""read_table: every column as text, Excel number formats, dates in messages."""

from __future__ import annotations

import datetime as dt

import openpyxl
import pandas as pd
import pytest

import mailkit
from wire import parse, text_of

SENDER = "Accounts team <accounts@example.com>"
BODY = (
    "Zip {{ zip }}, code {{ code }}, joined {{ joined }} "
    '({{ joined | date("%d %B %Y") }})\n'
)


@pytest.fixture
def workbook(tmp_path):
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["email", "zip", "code", "joined", "amount", "at"])
    sheet.append(
        [
            "a@example.com",
            "02494",
            "007",
            dt.datetime(2024, 3, 5),
            12.0,
            dt.datetime(2024, 3, 5, 14, 30),
        ]
    )
    sheet.append(
        [
            "b@example.com",
            2494,
            "008",
            dt.datetime(2024, 11, 20),
            7.5,
            dt.datetime(2024, 11, 20),
        ]
    )
    sheet["B3"].number_format = "00000"
    path = tmp_path / "people.xlsx"
    book.save(path)
    return path


def test_c33_read_table_keeps_text(workbook):
    df = mailkit.read_table(workbook)
    assert df["zip"].tolist() == ["02494", "2494"]
    assert df["code"].tolist() == ["007", "008"]
    assert df["joined"].tolist() == ["2024-03-05", "2024-11-20"]
    assert df["amount"].tolist() == ["12", "7.5"]
    assert df["at"].tolist() == ["2024-03-05 14:30:00", "2024-11-20"]
    assert all(isinstance(value, str) for value in df.to_numpy().ravel())


def test_c33_excel_zero_format_reported(workbook, server):
    df = mailkit.read_table(workbook)
    with pytest.raises(mailkit.ValidationError) as caught:
        mailkit.send_bulk(df, subject="Hi", body=BODY, sender=SENDER, smtp=server.url)
    problems = caught.value.problems
    assert problems[["row", "column", "value"]].values.tolist() == [[1, "zip", "2494"]]
    assert "'00000'" in problems["problem"].iloc[0]
    assert "2494 as 02494" in problems["problem"].iloc[0]
    assert server.sessions == 0

    applied = mailkit.read_table(workbook, excel_formats="apply")
    assert applied["zip"].tolist() == ["02494", "02494"]
    assert len(mailkit.validate(applied, subject="Hi", body=BODY, sender=SENDER)) == 0
    ignored = mailkit.read_table(workbook, excel_formats="ignore")
    assert ignored["zip"].tolist() == ["02494", "2494"]
    assert len(mailkit.validate(ignored, subject="Hi", body=BODY, sender=SENDER)) == 0


def test_c33_dates_in_messages(workbook, server):
    df = mailkit.read_table(workbook, excel_formats="apply")
    mailkit.send_bulk(
        df, subject="Hi", body=BODY, sender=SENDER, mode="fast", smtp=server.url
    )
    bodies = {m.recipients[0]: text_of(parse(m.data)) for m in server.messages}
    assert bodies == {
        "a@example.com": "Zip 02494, code 007, joined 2024-03-05 (05 March 2024)\n",
        "b@example.com": "Zip 02494, code 008, joined 2024-11-20 (20 November 2024)\n",
    }
    for received in server.messages:
        assert b"00:00:00" not in received.data


def test_c33_timestamps_from_pandas(server):
    df = pd.DataFrame(
        {
            "email": ["a@example.com", "b@example.com"],
            "joined": pd.to_datetime(
                ["2024-03-05", "2024-03-05 09:15"], format="ISO8601"
            ),
        }
    )
    mailkit.send_bulk(
        df,
        subject="Hi",
        body='{{ joined }} / {{ joined | date("%d %B %Y") }}\n',
        sender=SENDER,
        mode="fast",
        smtp=server.url,
    )
    bodies = {m.recipients[0]: text_of(parse(m.data)) for m in server.messages}
    assert bodies == {
        "a@example.com": "2024-03-05 / 05 March 2024\n",
        "b@example.com": "2024-03-05 09:15:00 / 05 March 2024\n",
    }


def test_read_csv_as_text(tmp_path):
    path = tmp_path / "people.csv"
    path.write_text("\ufeffemail,zip,name\na@example.com,02494,NA\nb@example.com,,Bo\n")
    df = mailkit.read_table(path)
    assert df["zip"].tolist() == ["02494", ""]
    assert df["name"].tolist() == ["NA", "Bo"]
    assert list(df.columns) == ["email", "zip", "name"]


def test_read_table_sheet_and_errors(workbook, tmp_path):
    with pytest.raises(mailkit.ConfigurationError, match="No sheet 'Other'"):
        mailkit.read_table(workbook, sheet="Other")
    with pytest.raises(mailkit.ConfigurationError, match="save it as .xlsx"):
        mailkit.read_table(tmp_path / "old.xls")
    with pytest.raises(mailkit.ConfigurationError, match="excel_formats"):
        mailkit.read_table(workbook, excel_formats="fix")


def test_read_table_rejects_other_formats(tmp_path):
    path = tmp_path / "people.json"
    path.write_text('[{"email": "a@example.com"}]\n')
    with pytest.raises(mailkit.ConfigurationError) as raised:
        mailkit.read_table(path)
    message = str(raised.value)
    assert "not .json (people.json)" in message
    assert "pd.read_json" in message
    with pytest.raises(mailkit.ConfigurationError, match="applies to .xlsx workbooks"):
        mailkit.read_table(tmp_path / "people.csv", sheet="Sheet1")


def test_read_table_text_under_other_names(tmp_path):
    plain = tmp_path / "people.txt"
    plain.write_text("email,name\na@example.com,Ann\n")
    export = tmp_path / "export.dat"
    export.write_text("email;name\nb@example.com;Bo\n")
    assert mailkit.read_table(plain)["name"].tolist() == ["Ann"]
    assert mailkit.read_table(export, sep=";")["name"].tolist() == ["Bo"]
