"""One form for the whole job: server settings, message and sending, in tabs."""

from __future__ import annotations

import ipywidgets as w
import pandas as pd

from ..config import SMTPConfig
from ..modes import DEFAULT_MAX_WORKERS
from .composer import Composer
from .send_panel import SendPanel
from .settings import SMTPSettings

__all__ = ["MailMergeApp", "app"]

TAB_TITLES = ("1. Server", "2. Message", "3. Send")


class MailMergeApp(w.VBox):
    """The :class:`SMTPSettings`, :class:`Composer` and :class:`SendPanel` forms
    for one DataFrame, as three tabs."""

    def __init__(
        self, settings: SMTPSettings, composer: Composer, panel: SendPanel
    ) -> None:
        self.settings = settings
        self.composer = composer
        self.panel = panel
        self.tabs = w.Tab(children=[settings, composer, panel], titles=TAB_TITLES)
        super().__init__([self.tabs])
        self.add_class("mailkit-app")

    @property
    def results(self) -> pd.DataFrame | None:
        """The results DataFrame of the last batch sent from the form."""
        return self.panel.results


def app(
    df: pd.DataFrame,
    *,
    smtp: str | SMTPConfig | None = None,
    sender: str = "",
    subject: str = "",
    body: str = "",
    html: str = "",
    to: str | None = None,
    mode: str = "instant",
    max_workers: int = DEFAULT_MAX_WORKERS,
) -> MailMergeApp:
    """Build the forms that compose, preview and send one message per row of ``df``.

    ``smtp`` fills the server form (a URL or a :class:`mailkit.SMTPConfig`);
    ``sender``, ``subject``, ``body``, ``html`` and ``to`` fill the message form
    and ``mode`` and ``max_workers`` the send form. Display the returned object
    in a notebook cell; its ``results`` attribute is the last batch's results.
    """
    settings = SMTPSettings(smtp)
    composer = Composer(
        df, settings=settings, sender=sender, subject=subject, body=body, html=html,
        to=to,
    )
    panel = SendPanel(df, composer, settings, mode=mode, max_workers=max_workers)
    return MailMergeApp(settings, composer, panel)
