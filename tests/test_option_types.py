"""Options of the wrong type raise errors naming the option, the value and the fix."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import mailkit

SENDER = "me@example.com"


def _frame() -> pd.DataFrame:
    return pd.DataFrame({"email": ["a@example.com"], "name": ["Ann"]})


def _call(function, df, **options):
    return function(df, subject="Hi {{ name }}", body="Hello", sender=SENDER, **options)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"mode": "safe", "delay": "1"}, "Invalid delay '1': give a finite number"),
        ({"mode": "safe", "delay": True}, "Invalid delay True"),
        ({"jitter": "0.5"}, "Invalid jitter '0.5': give a finite number"),
        ({"fill_empty": ["name"]}, "Invalid fill_empty= of type list: pass a dict"),
        ({"headers": ["X-Campaign"]}, "Invalid headers= of type list: pass a dict"),
        ({"dry_run": "no"}, "Invalid dry_run='no': give True or False"),
        (
            {"html": "<img src=\"cid:logo\">", "inline_images": "logo.png"},
            "Invalid inline_images= of type str",
        ),
    ],
)
def test_send_bulk_wrong_option_type(server, options, message):
    with pytest.raises(mailkit.ConfigurationError) as raised:
        _call(mailkit.send_bulk, _frame(), smtp=server.url, progress=False, **options)

    assert message in str(raised.value)
    assert server.messages == []


@pytest.mark.parametrize("name", ["fill_empty", "headers"])
def test_validate_wrong_mapping_type(name):
    with pytest.raises(mailkit.ConfigurationError, match=f"Invalid {name}= of type"):
        _call(mailkit.validate, _frame(), **{name: [name]})


def test_numpy_delay_accepted(server):
    results = _call(
        mailkit.send_bulk,
        _frame(),
        smtp=server.url,
        progress=False,
        mode="safe",
        delay=pd.Series([0.0]).iloc[0],
    )

    assert results["status"].tolist() == ["sent"]
    assert len(server.messages) == 1


@pytest.mark.parametrize(
    "function", [mailkit.send_bulk, mailkit.validate, mailkit.preview]
)
def test_non_frame_error_names_function(function):
    with pytest.raises(TypeError) as raised:
        _call(function, [{"email": "a@example.com"}])

    assert f"{function.__name__} expects a pandas DataFrame" in str(raised.value)
    assert "got list" in str(raised.value)


@pytest.mark.parametrize("name", ["tls_verify", "allow_insecure_auth"])
def test_smtp_config_flags_must_be_bools(name):
    # "false" is a truthy string: allow_insecure_auth="false" would allow sending
    # the password without TLS.
    with pytest.raises(mailkit.ConfigurationError) as raised:
        mailkit.SMTPConfig("smtp.example.com", **{name: "false"})

    assert f"Invalid {name}='false': give True or False" in str(raised.value)


def test_smtp_config_flags_accept_numpy_bools():
    config = mailkit.SMTPConfig(
        "smtp.example.com", tls_verify=np.bool_(False), allow_insecure_auth=np.bool_(True)
    )

    assert config.tls_verify is False
    assert config.allow_insecure_auth is True


def test_dry_run_accepts_numpy_bool(server):
    results = _call(
        mailkit.send_bulk, _frame(), smtp=server.url, progress=False, dry_run=np.bool_(True)
    )

    assert results.attrs["dry_run"] is True
    assert server.messages == []
