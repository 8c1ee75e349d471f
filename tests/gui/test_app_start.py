"""Starting the window where Qt's X11 plugin lacks a system library: named, with the package
to install, instead of Qt's bare abort."""

from __future__ import annotations

import subprocess

import pytest

from triage_app.gui import app


def test_missing_xcb_libraries_are_named_with_their_packages(monkeypatch: pytest.MonkeyPatch,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    ldd = ("\tlibxcb-cursor.so.0 => /lib/x86_64-linux-gnu/libxcb-cursor.so.0 (0x1)\n"
           "\tlibxcb-icccm.so.4 => not found\n\tlibxkbcommon-x11.so.0 => not found\n")
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: subprocess.CompletedProcess(a, 0, stdout=ldd, stderr=""))
    monkeypatch.setattr(app.sys, "platform", "linux")
    x11 = {"DISPLAY": ":0"}
    assert app.missing_xcb_libraries(x11) == ["libxcb-icccm.so.4", "libxkbcommon-x11.so.0"]
    # Another platform asked for, or a Wayland session: the X11 plugin is not used, nothing to check.
    assert app.missing_xcb_libraries({"DISPLAY": ":0", "QT_QPA_PLATFORM": "offscreen"}) == []
    assert app.missing_xcb_libraries({"DISPLAY": ":0", "WAYLAND_DISPLAY": "wayland-0"}) == []
    assert app.missing_xcb_libraries({}) == []
    assert [app.debian_package(m) for m in app.missing_xcb_libraries(x11)] == ["libxcb-icccm4", "libxkbcommon-x11-0"]
    monkeypatch.setattr(app, "missing_xcb_libraries", lambda environ=None: ["libxcb-icccm.so.4"])
    assert app.main(["--demo"]) == 1
    err = capsys.readouterr().err
    assert "libxcb-icccm.so.4" in err and "apt-get install libxcb-icccm4" in err


def test_a_mistyped_project_path_on_the_command_line_makes_nothing_unasked(monkeypatch: pytest.MonkeyPatch, tmp_path,
                                                                           qtbot) -> None:
    from PySide6.QtWidgets import QApplication, QMessageBox

    asked: list[tuple[str, object]] = []

    def answer(reply):
        def question(parent, title, text, buttons, default):
            asked.append((text, default))
            return reply
        return question

    monkeypatch.setattr(QApplication, "exec", lambda self: 0)  # the window opens and the event loop returns at once
    monkeypatch.setattr(app, "missing_xcb_libraries", lambda environ=None: [])
    typo = tmp_path / "projcet"
    monkeypatch.setattr(QMessageBox, "question", answer(QMessageBox.StandardButton.No))
    assert app.main([str(typo)]) == 0
    assert not typo.exists()  # nothing made
    assert "does not exist (a mistyped path?)" in asked[0][0] and asked[0][1] == QMessageBox.StandardButton.No
    monkeypatch.setattr(QMessageBox, "question", answer(QMessageBox.StandardButton.Yes))
    assert app.main([str(typo)]) == 0
    assert (typo / "project.db").is_file()  # made once the user said so
    for w in QApplication.topLevelWidgets():
        w.close()
