"""The window's two looks: the platform's own (light) and a dark one for long shifts and dim
rooms (on Qt's Fusion style, which honours a palette alike on every platform); the few colours the pages use beyond the
palette (the feedback line, a warning, a reached target, a flight past its drift alert) in the
shade that reads on each; and text sizes relative to the window's text, so that headers follow
Ctrl+= / Ctrl+- with the rest.

A view that styles labels itself has a ``restyle()`` method, which the window calls after the
look or the text size changes."""

from __future__ import annotations

from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QApplication

THEMES = ("light", "dark")

#: Colours of words and marks, per look: each reads on that look's window background.
TONES: dict[str, dict[str, str]] = {
    "light": {"secondary": "#555555", "quiet": "#808080", "feedback": "#1f4e8c", "warning": "#8a5a00", "good": "#1b7f3b",
              "error": "#b00020", "text": "#222222", "alert_row": "#fde2e1", "bar_empty": "#e4e4e4", "bar_tick": "#111111"},
    "dark": {"secondary": "#b8b8b8", "quiet": "#9a9a9a", "feedback": "#8ab4f8", "warning": "#f2b866", "good": "#72d08f",
             "error": "#ff8a8a", "text": "#e6e6e6", "alert_row": "#5c2b2b", "bar_empty": "#4a4b50", "bar_tick": "#f0f0f0"},
}

_current = "light"
_native: str | None = None  # the platform's own style, which the light look keeps


def current() -> str:
    return _current


def tone(name: str) -> str:
    """A colour of the current look (``TONES``)."""
    return TONES[_current][name]


def text_size(scale: float) -> str:
    """A style sheet's font size, ``scale`` times the window's text size now."""
    return f"font-size: {QApplication.font().pointSizeF() * scale:.1f}pt;"


def dark_palette() -> QPalette:
    p = QPalette()
    base, window, text = QColor("#1f2023"), QColor("#2b2c30"), QColor("#e6e6e6")
    for role, colour in (
        (QPalette.ColorRole.Window, window), (QPalette.ColorRole.WindowText, text), (QPalette.ColorRole.Base, base),
        (QPalette.ColorRole.AlternateBase, QColor("#26272b")), (QPalette.ColorRole.ToolTipBase, QColor("#3a3b40")),
        (QPalette.ColorRole.ToolTipText, text), (QPalette.ColorRole.Text, text), (QPalette.ColorRole.Button, QColor("#35363b")),
        (QPalette.ColorRole.ButtonText, text), (QPalette.ColorRole.BrightText, QColor("#ff8a8a")),
        (QPalette.ColorRole.Highlight, QColor("#3d6fb4")), (QPalette.ColorRole.HighlightedText, QColor("#ffffff")),
        (QPalette.ColorRole.Link, QColor("#8ab4f8")), (QPalette.ColorRole.PlaceholderText, QColor("#8c8c8c")),
        (QPalette.ColorRole.Light, QColor("#4a4b50")), (QPalette.ColorRole.Midlight, QColor("#3e3f44")),
        (QPalette.ColorRole.Mid, QColor("#2f3034")), (QPalette.ColorRole.Dark, QColor("#18191b")),
        (QPalette.ColorRole.Shadow, QColor("#000000")),
    ):
        p.setColor(role, colour)
    for role in (QPalette.ColorRole.Text, QPalette.ColorRole.WindowText, QPalette.ColorRole.ButtonText):
        p.setColor(QPalette.ColorGroup.Disabled, role, QColor("#7a7a7a"))
    return p


def apply(name: str) -> str:
    """Switch the whole application to the look ``name`` (light or dark); returns it."""
    global _current, _native
    if name not in THEMES:
        raise ValueError(f"no look named {name!r}: light or dark")
    app = QApplication.instance()
    if not isinstance(app, QApplication):
        return _current
    if _native is None:
        _native = app.style().name()
    if name == "dark":
        app.setStyle("Fusion")  # the palette is honoured alike on every platform
        app.setPalette(dark_palette())
    else:
        app.setStyle(_native)
        app.setPalette(app.style().standardPalette())
    _current = name
    return name
