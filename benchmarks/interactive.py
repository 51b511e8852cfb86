"""An interactive benchmark for Jupyter: pick a design and settings, press Run,
and watch the messages arrive at a latency-simulating server.

The curve is drawn from the server's own record of when each message's final
"." arrived, so every design is measured the same way, whatever its client.
The run happens on a background thread, so the kernel stays responsive. That
thread only sets widget values (the plot is a PNG in an ``Image`` widget) and
never prints or displays, because output from other threads can land in the
wrong notebook cell.
"""

from __future__ import annotations

import io
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

import ipywidgets as widgets

from .baselines import (
    Endpoint,
    RunResult,
    send_aiosmtplib,
    send_one_connection,
    send_sequential,
    send_smtplib_pool,
    send_thread_pool,
)
from .latency_server import LatencyServer, available_profiles
from .mailkit_designs import send_prebuilt_with_mailkit, send_with_mailkit
from .workload import prebuilt_messages, recipients_frame

__all__ = ["Curve", "InteractiveBenchmark", "INTERACTIVE_DESIGNS"]

logger = logging.getLogger(__name__)

#: Seconds between two redraws of the live plot.
REDRAW_INTERVAL_S = 0.25

Design = Callable[[Endpoint, int, int], RunResult]

INTERACTIVE_DESIGNS: dict[str, Design] = {
    "mailkit instant": lambda endpoint, n, workers: send_with_mailkit(
        endpoint, recipients_frame(n), workers=workers
    ),
    "mailkit fast": lambda endpoint, n, workers: send_with_mailkit(
        endpoint, recipients_frame(n), mode="fast"
    ),
    "mailkit transport (prebuilt)": lambda endpoint, n, workers: (
        send_prebuilt_with_mailkit(endpoint, prebuilt_messages(n), workers)
    ),
    "thread pool, new connection per message": lambda endpoint, n, workers: (
        send_thread_pool(endpoint, prebuilt_messages(n), threads=workers)
    ),
    "smtplib pool": lambda endpoint, n, workers: send_smtplib_pool(
        endpoint, prebuilt_messages(n), workers
    ),
    "aiosmtplib": lambda endpoint, n, workers: send_aiosmtplib(
        endpoint, prebuilt_messages(n), workers
    ),
    "sequential, new connection per message": lambda endpoint, n, workers: (
        send_sequential(endpoint, prebuilt_messages(n))
    ),
    "fast, one reused connection": lambda endpoint, n, workers: send_one_connection(
        endpoint, prebuilt_messages(n)
    ),
}

#: Designs that send over one connection at a time, whatever the workers slider is set to.
SINGLE_CONNECTION_DESIGNS = frozenset(
    {
        "mailkit fast",
        "sequential, new connection per message",
        "fast, one reused connection",
    }
)


@dataclass
class Curve:
    """Messages received over time in one run, as the server recorded them."""

    label: str
    times: list[float] = field(default_factory=list)
    lower_bound: float | None = None
    elapsed_s: float | None = None
    error: str | None = None

    @property
    def count(self) -> int:
        return len(self.times)


class InteractiveBenchmark:
    """The form: message count, workers, profile, scale and design, a Run button,
    a live plot and a status line.

    :meth:`run` does what the button does and can be called from code; with
    ``wait=True`` it returns once the run has finished.
    """

    def __init__(
        self,
        *,
        messages: int = 100,
        workers: int = 10,
        profile: str = "gmail",
        scale: float = 0.1,
        design: str = "mailkit instant",
    ) -> None:
        self.messages = widgets.IntSlider(
            value=messages, min=1, max=1000, description="messages", continuous_update=False
        )
        self.workers = widgets.IntSlider(
            value=workers, min=1, max=30, description="workers", continuous_update=False
        )
        self.profile = widgets.Dropdown(
            options=available_profiles(), value=profile, description="profile"
        )
        self.scale = widgets.FloatLogSlider(
            value=scale, base=10, min=-3, max=0, step=0.1, description="delay scale"
        )
        self.design = widgets.Dropdown(
            options=list(INTERACTIVE_DESIGNS), value=design, description="design"
        )
        self.session_cap = widgets.Checkbox(
            value=True, description="enforce the profile's session cap (421 beyond it)"
        )
        self.run_button = widgets.Button(description="Run", button_style="primary")
        self.clear_button = widgets.Button(description="Clear plot")
        self.status = widgets.HTML(value="Ready.")
        self.plot = widgets.Image(format="png")
        self.curves: list[Curve] = []
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.run_button.on_click(lambda _: self.run())
        self.clear_button.on_click(lambda _: self.clear())
        self.widget = widgets.VBox(
            [
                widgets.HBox([self.messages, self.workers]),
                widgets.HBox([self.profile, self.scale]),
                self.session_cap,
                widgets.HBox([self.design, self.run_button, self.clear_button]),
                self.status,
                self.plot,
            ]
        )

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def clear(self) -> None:
        """Forget the curves of earlier runs."""
        with self._lock:
            self.curves = [curve for curve in self.curves if curve.elapsed_s is None]
        self._redraw()

    def run(self, *, wait: bool = False, timeout: float = 600.0) -> Curve | None:
        """Start a run with the current settings; None when one is still running.

        With ``wait`` it blocks until the run ends (at most ``timeout`` seconds)
        and returns its curve.
        """
        if self.running:
            self.status.value = "A run is still in progress."
            return None
        settings = {
            "design": self.design.value,
            "messages": self.messages.value,
            "workers": self.workers.value,
            "profile": self.profile.value,
            "scale": self.scale.value,
            "session_cap": self.session_cap.value,
        }
        label = (
            f"{settings['design']}, {settings['workers']} workers, "
            f"{settings['profile']} x{settings['scale']:.3g}"
        )
        curve = Curve(label)
        with self._lock:
            self.curves.append(curve)
        self.run_button.disabled = True
        self.status.value = f"Running {label} for {settings['messages']} messages..."
        self._thread = threading.Thread(
            target=self._run, args=(curve, settings), name="bench-interactive", daemon=True
        )
        self._thread.start()
        if wait:
            self._thread.join(timeout)
        return curve

    def _run(self, curve: Curve, settings: dict) -> None:
        try:
            connections = settings["workers"]
            if settings["design"] in SINGLE_CONNECTION_DESIGNS:
                connections = 1
            server = LatencyServer(
                settings["profile"],
                scale=settings["scale"],
                max_sessions=None if settings["session_cap"] else 0,
            )
            with server:
                curve.lower_bound = server.lower_bound(settings["messages"], connections)
                self._drive(curve, settings, server)
            if curve.error:
                self.status.value = f"Failed: {curve.error}"
            else:
                self.status.value = (
                    f"{curve.count} messages in {curve.elapsed_s:.2f} s "
                    f"(lower bound {curve.lower_bound:.2f} s): {curve.label}"
                )
        except Exception as exc:  # noqa: BLE001 - shown in the form, never swallowed
            logger.exception("interactive benchmark run failed")
            curve.error = f"{type(exc).__name__}: {exc}"
            self.status.value = f"Failed: {curve.error}"
        finally:
            self._redraw()
            self.run_button.disabled = False

    def _drive(self, curve: Curve, settings: dict, server: LatencyServer) -> None:
        design = INTERACTIVE_DESIGNS[settings["design"]]
        errors: list[BaseException] = []
        endpoint = server.endpoint()

        def send() -> None:
            started = time.perf_counter()
            try:
                design(endpoint, settings["messages"], settings["workers"])
            except BaseException as exc:  # noqa: BLE001 - reported by the caller
                errors.append(exc)
            finally:
                curve.elapsed_s = time.perf_counter() - started

        started_wall = time.time()
        sender = threading.Thread(target=send, name="bench-interactive-send", daemon=True)
        sender.start()
        while sender.is_alive():
            sender.join(REDRAW_INTERVAL_S)
            self._collect(curve, server, started_wall)
            self._redraw()
        self._collect(curve, server, started_wall)
        if errors:
            curve.error = f"{type(errors[0]).__name__}: {errors[0]}"

    @staticmethod
    def _collect(curve: Curve, server: LatencyServer, started_wall: float) -> None:
        accepted = [message for message in server.server.messages if message.accepted]
        curve.times = sorted(message.received_at - started_wall for message in accepted)

    def render_png(self) -> bytes:
        """Draw every curve and return the figure as PNG bytes."""
        from matplotlib.figure import Figure

        figure = Figure(figsize=(7, 3.6), dpi=90)
        ax = figure.subplots()
        with self._lock:
            curves = list(self.curves)
        for curve in curves:
            if not curve.times:
                continue
            counts = range(1, curve.count + 1)
            (line,) = ax.step([0.0, *curve.times], [0, *counts], where="post", label=curve.label)
            if curve.lower_bound:
                ax.axvline(curve.lower_bound, color=line.get_color(), linestyle=":", linewidth=1)
        ax.set_xlabel("seconds since the start")
        ax.set_ylabel("messages received")
        ax.set_title("Messages received by the server over time (dotted: lower bound)")
        if any(curve.times for curve in curves):
            ax.legend(fontsize="x-small", loc="upper left")
        figure.tight_layout()
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png")
        return buffer.getvalue()

    def _redraw(self) -> None:
        self.plot.value = self.render_png()
