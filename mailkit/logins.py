"""Which logins succeeded recently in this process.

A batch normally lets one connection log in before the others try, so that a
wrong password costs one AUTH instead of one per connection. When the same
account logged in to the same server a short while ago, in this process, the
other connections log in at once and the batch starts one login earlier.

Entries are keyed by an HMAC of the server, the user name and the secret, with
a key made at random for this process. So the registry contains nothing that
would give the password back or that means anything outside the process, and
it is never written anywhere. A rejected login removes the entry.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time

from .config import SMTPConfig

__all__ = ["LOGIN_TRUST_S", "LoginRegistry", "recent_logins"]

#: Seconds for which a successful login lets later connections skip waiting.
LOGIN_TRUST_S = 600.0


class LoginRegistry:
    """Successful logins by server and account, for ``trust_s`` seconds each."""

    def __init__(self, trust_s: float = LOGIN_TRUST_S) -> None:
        self.trust_s = trust_s
        self._key = secrets.token_bytes(32)
        self._succeeded: dict[str, float] = {}
        self._lock = threading.Lock()

    def _entry(self, config: SMTPConfig) -> str | None:
        # A token provider may hand out a different token each time, so only
        # password logins are remembered.
        if not config.username or config.token_provider is not None:
            return None
        fields = (
            config.host,
            str(config.port),
            config.security,
            config.username,
            config.password or "",
        )
        message = "\0".join(fields).encode("utf-8", "surrogatepass")
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()

    def succeeded(self, config: SMTPConfig) -> None:
        """Record that ``config`` logged in just now."""
        entry = self._entry(config)
        if entry is not None:
            with self._lock:
                self._succeeded[entry] = time.monotonic()

    def rejected(self, config: SMTPConfig) -> None:
        """Forget ``config``: the server rejected its credentials."""
        entry = self._entry(config)
        if entry is not None:
            with self._lock:
                self._succeeded.pop(entry, None)

    def is_recent(self, config: SMTPConfig) -> bool:
        """Return whether ``config`` logged in within the last ``trust_s`` seconds."""
        entry = self._entry(config)
        if entry is None:
            return False
        with self._lock:
            when = self._succeeded.get(entry)
            if when is None:
                return False
            if time.monotonic() - when > self.trust_s:
                del self._succeeded[entry]
                return False
            return True

    def clear(self) -> None:
        with self._lock:
            self._succeeded.clear()


#: The registry that every :class:`~mailkit.transport.Connection` reports to.
recent_logins = LoginRegistry()
