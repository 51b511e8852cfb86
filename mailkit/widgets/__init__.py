"""Notebook forms for mailkit, built on ipywidgets.

    form = mailkit.widgets.app(df, smtp="smtp+starttls://smtp.example.com:587")
    form  # shows the server, message and send forms as tabs

The forms call the same functions as code does (:func:`mailkit.preview`,
:func:`mailkit.validate`, :func:`mailkit.send_bulk`) and show every error in the
form instead of raising it. Each form is an ``ipywidgets.VBox`` and can be used
on its own: :class:`SMTPSettings`, :class:`Composer` and :class:`SendPanel`.
"""

from __future__ import annotations

from .app import MailMergeApp, app
from .composer import Composer
from .send_panel import SendPanel
from .settings import CUSTOM, LOCAL_SERVER, SMTPSettings

__all__ = [
    "CUSTOM",
    "LOCAL_SERVER",
    "Composer",
    "MailMergeApp",
    "SMTPSettings",
    "SendPanel",
    "app",
]
