"""LocalSMTPServer: start-up errors on a busy or invalid port."""

from __future__ import annotations

import gc
import socket
import time
import warnings

import pandas as pd
import pytest

import mailkit


def test_busy_port_fails_at_once():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        server = mailkit.LocalSMTPServer(port=taken.getsockname()[1])
        started = time.monotonic()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with pytest.raises(OSError, match="address already in use"):
                server.start()
            elapsed = time.monotonic() - started
            # An event loop left open warns when it is garbage-collected.
            del server
            gc.collect()

    # aiosmtpd waits its ready_timeout of 10 s when nothing reports the bind error.
    assert elapsed < 5
    assert not [w for w in caught if issubclass(w.category, ResourceWarning)]


@pytest.mark.parametrize("port", ["1025", -1, 65536, True])
def test_invalid_port_rejected(port):
    with pytest.raises(mailkit.ConfigurationError, match="Invalid port"):
        mailkit.LocalSMTPServer(port=port)


def test_running_server_unaffected_by_busy_port():
    with mailkit.LocalSMTPServer() as first:
        with pytest.raises(OSError):
            mailkit.LocalSMTPServer(port=first.port).start()
        results = mailkit.send_bulk(
            pd.DataFrame({"email": ["a@example.com"]}),
            subject="Hi",
            body="Hello",
            sender="me@example.com",
            smtp=first.url,
            progress=False,
        )

    assert results["status"].tolist() == ["sent"]
    assert len(first.messages) == 1
    assert b"Subject: Hi" in first.messages[0].data
