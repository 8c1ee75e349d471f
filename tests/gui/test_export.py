"""The export dialog: the preview counts follow the form, and Export writes a folder that
loads back, with the progress shown while it runs."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt

from tests.gui.conftest import shot
from triage_app.core.store import Workspace
from triage_app.gui.main_window import MainWindow


def test_export_dialog_previews_and_exports(qtbot, review_project: Path, tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    with Workspace(review_project) as p:
        rows = p.frames.frame_rows()
        p.decisions.record([dict(frame_id=r["id"], label="accept" if i % 3 == 0 else "reject",
                                      reviewer="ana" if i < 8 else "ben", seconds_spent=1.0, policy="p",
                                      member_scores="{}") for i, r in enumerate(rows)])
    window = MainWindow()
    qtbot.addWidget(window)
    window.show()
    assert window.controller.open_project(review_project)
    with qtbot.waitSignal(window.review.queue_did_change, timeout=10000, raising=False):
        pass
    window.open_export()
    dialog = window.export_dialog
    qtbot.waitUntil(lambda: dialog.table.item(3, 3) is not None, timeout=10000)
    assert dialog.table.item(3, 3).text() == "12"  # 4 accepted + 8 rejected
    assert dialog.table.item(3, 0).text() == "4" and dialog.table.item(3, 1).text() == "8"

    # Untick reviewer ben: the preview shrinks to ana's 8 decisions.
    with qtbot.waitSignal(dialog.preview_did_update, timeout=10000) as blocker:
        dialog.reviewers.item(1).setCheckState(Qt.CheckState.Unchecked)
    assert blocker.args[0]["items"] == 8 and dialog.table.item(3, 3).text() == "8"
    # Undersampling shows the training split's change beside the count before it.
    with qtbot.waitSignal(dialog.preview_did_update, timeout=10000):
        dialog.balance.setCurrentIndex(dialog.balance.findData("under"))
    assert "(was" in dialog.table.item(0, 1).text()
    dialog.format_boxes["coco"].setChecked(True)
    qtbot.waitUntil(lambda: dialog.export_button.isEnabled(), timeout=10000)
    # Export with no folder: said, and Export waits for one; typing a folder brings it back.
    qtbot.mouseClick(dialog.export_button, Qt.MouseButton.LeftButton)
    assert "Choose a folder" in dialog.preview_note.text() and not dialog.export_button.isEnabled()
    out = tmp_path / "gui-export"
    dialog.outdir.setText(str(out))
    qtbot.waitUntil(lambda: dialog.export_button.isEnabled(), timeout=10000)
    shot(dialog, "export_dialog.png")
    with qtbot.waitSignal(dialog.export_did_finish, timeout=60000) as done:
        qtbot.mouseClick(dialog.export_button, Qt.MouseButton.LeftButton)
    report = done.args[0]
    table = pq.read_table(out / "manifest.parquet").to_pylist()
    assert len(table) == report.rows and {r["reviewer"] for r in table} == {"ana"}
    assert (out / "coco_train.json").is_file() and "Exported" in dialog.preview_note.text()

    # Exporting into the same folder again without "replace" is refused with the folder named.
    with qtbot.waitSignal(dialog.export_did_fail, timeout=60000) as failed:
        qtbot.mouseClick(dialog.export_button, Qt.MouseButton.LeftButton)
    assert str(out) in failed.args[0] and "not empty" in failed.args[0]

    # The round trip through CVAT: the accepted frames out as a task, the boxes drawn there back
    # in by "Import drawn boxes…"; the preview says what came in and which frames carry them.
    dialog.format_boxes["cvat"].setChecked(True)
    dialog.overwrite.setChecked(True)
    with qtbot.waitSignal(dialog.export_did_finish, timeout=60000):
        qtbot.mouseClick(dialog.export_button, Qt.MouseButton.LeftButton)
    xml = out / "cvat" / "annotations.xml"
    assert xml.is_file() and (out / "cvat" / "images").is_dir()
    with qtbot.waitSignal(dialog.preview_did_update, timeout=10000):
        said = dialog.import_drawn(xml)
    accepted = said.split(" frame")[0].split(": ")[1]
    assert said.startswith("annotations.xml: ") and "from cvat" in said and int(accepted) > 0
    assert said in dialog.preview_note.text() and "carry boxes drawn in an annotation tool" in dialog.preview_note.text()
    with qtbot.waitSignal(dialog.preview_did_update, timeout=10000):
        said = dialog.import_drawn(tmp_path / "missing.json")
    assert said.startswith("Not imported: ") and "missing.json" in said and "cannot be read" in said
    dialog.close()
    window.controller.close()
