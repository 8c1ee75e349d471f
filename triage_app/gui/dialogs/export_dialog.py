"""The export dialog: choose what (sources, reviewers, labels, decision time, policies) and
how (formats, split, balance, folder), see the counts per split and class before writing,
and export in a worker with a progress bar. The preview and the export share one plan."""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path
from typing import Any

from PySide6.QtCore import QDateTime, Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDateTimeEdit,
    QDialog,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
)

from triage_app.core.model.records import Label
from triage_app.core.outputs.export.plan import SPLITS, ExportReport, Options, Selection, plan_export
from triage_app.core.outputs.export.writer import export
from triage_app.gui import theme
from triage_app.gui.tasks import Task, run_task

log = logging.getLogger(__name__)

_FORMAT_TEXT = {
    "imagefolder": "Image folders (split/class/…)", "csv": "Manifest CSV", "parquet": "Manifest Parquet",
    "coco": "COCO JSON (detection, the target's class)", "yolo": "YOLO detection (images/, labels/, data.yaml)",
    "crops": "Crops around the firing tile", "geojson": "GeoJSON points (accepted finds, on the ground)",
    "kml": "KML points (accepted finds, on the ground)",
    "cvat": "CVAT task (accepted frames, the tile pre-drawn)",
    "label-studio": "Label Studio tasks (accepted frames, the tile pre-drawn)",
    "fiftyone": "FiftyOne dataset (every frame with its position)",
}
_CLASSES = ("positive", "negative", "unsure")


def _checklist(items: list[tuple[str, Any]]) -> QListWidget:
    w = QListWidget()
    for text, data in items:
        it = QListWidgetItem(text)
        it.setData(Qt.ItemDataRole.UserRole, data)
        it.setFlags(it.flags() | Qt.ItemFlag.ItemIsUserCheckable)
        it.setCheckState(Qt.CheckState.Checked)
        w.addItem(it)
    w.setMaximumHeight(110)
    return w


def _checked(w: QListWidget) -> list[Any] | None:
    """The checked items' data, or None when all are checked (no restriction)."""
    items = [w.item(i) for i in range(w.count())]
    on = [it.data(Qt.ItemDataRole.UserRole) for it in items if it.checkState() == Qt.CheckState.Checked]
    return None if len(on) == len(items) else on


class ExportDialog(QDialog):
    preview_did_update = Signal(dict)  # plan counts, for tests and the table
    export_did_finish = Signal(object)  # ExportReport
    export_did_fail = Signal(str)

    def __init__(self, ws: Any, parent: Any = None) -> None:
        super().__init__(parent)
        self.ws = ws
        self.setWindowTitle("Export labelled frames")
        self.resize(980, 620)
        self._generation = 0
        self._worker: Task | None = None
        self._preview_worker: Task | None = None
        self.import_note = ""

        sources = [(f"{s['name']}  ({s['kind']}, {s['frames']} frames)", int(s["id"])) for s in ws.frames.source_summaries()]
        reviewers, policies = ws.decisions.reviewers_and_policies()
        self.sources = _checklist(sources)
        self.reviewers = _checklist([(r, r) for r in reviewers])
        self.policies = _checklist([(f"policy {p}", p) for p in policies] + [("card defaults (no saved policy)", None)])
        self.label_boxes = {lab: QCheckBox(text) for lab, text in (("accept", "Accepted"), ("reject", "Rejected"),
                                                                   ("unsure", "Unsure"))}
        self.label_boxes["accept"].setChecked(True)
        self.label_boxes["reject"].setChecked(True)
        self.since_box, self.until_box = QCheckBox("Decided from"), QCheckBox("Decided before")
        now = QDateTime.currentDateTime()
        self.since_edit, self.until_edit = QDateTimeEdit(now.addDays(-7)), QDateTimeEdit(now.addDays(1))
        for e in (self.since_edit, self.until_edit):
            e.setCalendarPopup(True)
            e.setDisplayFormat("yyyy-MM-dd HH:mm")
        self.doubtful = QCheckBox("Include unresolved disagreements and doubted labels")

        what = QGroupBox("What to export")
        wl = QFormLayout(what)
        wl.addRow("Sources", self.sources)
        wl.addRow("Reviewers", self.reviewers)
        wl.addRow("Policies", self.policies)
        labels_row = QHBoxLayout()
        for b in self.label_boxes.values():
            labels_row.addWidget(b)
        labels_row.addStretch(1)
        wl.addRow("Labels", labels_row)
        for box, edit in ((self.since_box, self.since_edit), (self.until_box, self.until_edit)):
            wl.addRow(box, edit)
        wl.addRow(self.doubtful)

        self.format_boxes = {f: QCheckBox(text) for f, text in _FORMAT_TEXT.items()}
        for f in ("imagefolder", "csv", "parquet"):
            self.format_boxes[f].setChecked(True)
        self.split_spins = []
        for share in (0.8, 0.1, 0.1):
            s = QDoubleSpinBox()
            s.setRange(0.0, 1.0)
            s.setSingleStep(0.05)
            s.setDecimals(2)
            s.setValue(share)
            self.split_spins.append(s)
        self.balance = QComboBox()
        for key, text in (("none", "None (report only)"), ("under", "Undersample the larger classes"),
                          ("over", "Oversample the smaller classes")):
            self.balance.addItem(text, key)
        self.seed = QSpinBox()
        self.seed.setRange(0, 2**31 - 1)
        self.outdir = QLineEdit()
        self.outdir.setPlaceholderText("a new or empty folder")
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        self.overwrite = QCheckBox("Replace the folder if it holds an export (only once the new one is complete)")

        how = QGroupBox("How")
        hl = QFormLayout(how)
        grid = QGridLayout()
        for i, b in enumerate(self.format_boxes.values()):
            grid.addWidget(b, i // 2, i % 2)
        hl.addRow("Formats", grid)
        split_row = QHBoxLayout()
        for name, s in zip(("train", "val", "test"), self.split_spins, strict=True):
            split_row.addWidget(QLabel(name))
            split_row.addWidget(s)
        hl.addRow("Split (stratified)", split_row)
        hl.addRow("Balance (train split)", self.balance)
        hl.addRow("Seed", self.seed)
        out_row = QHBoxLayout()
        out_row.addWidget(self.outdir, 1)
        out_row.addWidget(browse)
        hl.addRow("Folder", out_row)
        hl.addRow(self.overwrite)

        self.table = QTableWidget(len(SPLITS) + 1, len(_CLASSES) + 1)
        self.table.setHorizontalHeaderLabels([*_CLASSES, "total"])
        self.table.setVerticalHeaderLabels([*SPLITS, "total"])
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.table.verticalHeader().setDefaultSectionSize(26)
        self.table.setFixedHeight(self.table.horizontalHeader().sizeHint().height() + 26 * (len(SPLITS) + 1) + 4)
        self.preview_note = QLabel("")
        self.preview_note.setWordWrap(True)
        self.progress = QProgressBar()
        self.progress.setVisible(False)
        self.export_button = QPushButton("Export")
        self.export_button.setDefault(True)
        self.export_button.clicked.connect(self.start_export)
        self.close_button = QPushButton("Close")
        self.close_button.clicked.connect(self._close_or_cancel)
        self.import_button = QPushButton("Import drawn boxes…")
        self.import_button.setToolTip("Boxes people drew in CVAT (CVAT for images 1.1 XML) or Label Studio (JSON, "
                                      "JSON-MIN) on frames exported from here: they become the frames' boxes in "
                                      "COCO, YOLO and the next CVAT or Label Studio export")
        self.import_button.clicked.connect(self._choose_import)

        top = QHBoxLayout()
        top.addWidget(what, 1)
        top.addWidget(how, 1)
        buttons = QHBoxLayout()
        buttons.addWidget(self.import_button)
        buttons.addWidget(self.progress, 3)
        buttons.addStretch(1)
        buttons.addWidget(self.export_button)
        buttons.addWidget(self.close_button)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(QLabel("Preview: frames per split and class"))
        layout.addWidget(self.table)
        layout.addWidget(self.preview_note)
        layout.addLayout(buttons)

        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(250)
        self._timer.timeout.connect(self.update_preview)
        for w in (self.sources, self.reviewers, self.policies):
            w.itemChanged.connect(self._changed)
        for b in [*self.label_boxes.values(), *self.format_boxes.values(), self.since_box, self.until_box, self.doubtful]:
            b.toggled.connect(self._changed)
        for s in [*self.split_spins, self.seed]:
            s.valueChanged.connect(self._changed)
        self.balance.currentIndexChanged.connect(self._changed)
        self.since_edit.dateTimeChanged.connect(self._changed)
        self.until_edit.dateTimeChanged.connect(self._changed)
        # A folder typed after "Choose a folder" was said: the preview runs again, and Export
        # comes back with it.
        self.outdir.textChanged.connect(self._changed)
        self.update_preview()

    # -- reading the form --------------------------------------------------------------
    def selection(self) -> Selection:
        def when(box: QCheckBox, edit: QDateTimeEdit) -> dt.datetime | None:
            return edit.dateTime().toPython().astimezone() if box.isChecked() else None

        labels = tuple(lab for lab, b in self.label_boxes.items() if b.isChecked())
        return Selection(sources=_checked(self.sources), reviewers=_checked(self.reviewers), labels=labels,
                         since=when(self.since_box, self.since_edit), until=when(self.until_box, self.until_edit),
                         policies=_checked(self.policies), include_doubtful=self.doubtful.isChecked())

    def options(self) -> Options:
        formats = tuple(f for f, b in self.format_boxes.items() if b.isChecked())
        split = tuple(round(s.value(), 4) for s in self.split_spins)
        return Options(formats=formats, split=split, balance=self.balance.currentData(), seed=self.seed.value(),
                       overwrite=self.overwrite.isChecked())

    def _browse(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Export into (a new folder is made inside if this one is not empty)")
        if folder:
            self.outdir.setText(folder)

    # -- preview -------------------------------------------------------------------------
    def _changed(self, *_: object) -> None:
        self._timer.start()

    def update_preview(self) -> None:
        try:
            selection, options = self.selection(), self.options()
        except ValueError as exc:
            self._show_problem(str(exc))
            return
        self._generation += 1
        gen = self._generation
        ws = self.ws
        self._preview_worker = run_task(lambda progress, cancel: plan_export(ws, selection, options),
                                        lambda plan: self._show_plan(gen, plan),
                                        lambda msg: self._show_problem(msg) if gen == self._generation else None)

    def _show_problem(self, message: str) -> None:
        self.preview_note.setText(f"<span style='color:{theme.tone('error')}'>{message}</span>")
        self.export_button.setEnabled(False)

    def _show_plan(self, gen: int, plan: Any) -> None:
        if gen != self._generation:
            return  # a newer preview is on its way
        counts = plan.counts()
        totals = {c: 0 for c in _CLASSES}
        for r, split in enumerate(SPLITS):
            row_total = 0
            for c, cls in enumerate(_CLASSES):
                n = counts[split].get(cls, 0)
                before = plan.before_balance[split].get(cls, 0)
                text = str(n) if n == before else f"{n} (was {before})"
                self.table.setItem(r, c, QTableWidgetItem(text))
                totals[cls] += n
                row_total += n
            self.table.setItem(r, len(_CLASSES), QTableWidgetItem(str(row_total)))
        for c, cls in enumerate(_CLASSES):
            self.table.setItem(len(SPLITS), c, QTableWidgetItem(str(totals[cls])))
        self.table.setItem(len(SPLITS), len(_CLASSES), QTableWidgetItem(str(sum(totals.values()))))
        notes = []
        held = plan.held_back
        if held["disputed"] or held["doubted"]:
            notes.append(f"Held back: {held['disputed']} frames with an unresolved disagreement, "
                         f"{held['doubted']} decisions the label check doubts.")
        gps = sum(1 for it in plan.items if not it.copy and it.decision.label is Label.ACCEPT and it.frame["lat"] is not None)
        notes.append(f"{gps} accepted frames have GPS (map points).")
        drawn = sum(1 for it in plan.items if not it.copy and it.drawn is not None and it.cls == "positive")
        if drawn:
            notes.append(f"{drawn} accepted frames carry boxes drawn in an annotation tool (COCO, YOLO and the "
                         "annotation tasks use them instead of the tile that fired).")
        if not plan.items:
            notes.insert(0, "Nothing matches this selection.")
        if self.import_note:
            notes.insert(0, self.import_note + ".")
        self.preview_note.setText(" ".join(notes))
        self.export_button.setEnabled(bool(plan.items) and self._worker is None)
        self.preview_did_update.emit(dict(counts=counts, held_back=held, items=len(plan.items)))

    # -- annotations drawn elsewhere ------------------------------------------------------------
    def _choose_import(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Boxes drawn in CVAT or Label Studio", "",
                                              "CVAT XML or Label Studio JSON (*.xml *.json);;All files (*)")
        if path:
            self.import_drawn(Path(path))

    def import_drawn(self, path: Path) -> str:
        """Record the boxes of a CVAT or Label Studio export; the preview says what came in."""
        from triage_app.core.model.errors import InputError
        from triage_app.core.outputs.annotation_import import import_annotations

        try:
            text = import_annotations(self.ws, path).summary()
        except InputError as exc:
            text = f"Not imported: {exc}"
        self.import_note = text
        self.update_preview()
        return text

    # -- export ----------------------------------------------------------------------------
    def start_export(self) -> None:
        text = self.outdir.text().strip()
        if not text:
            self._show_problem("Choose a folder to export into.")
            return
        try:
            selection, options = self.selection(), self.options()
        except ValueError as exc:
            self._show_problem(str(exc))
            return
        out = Path(text)
        if out.is_dir() and any(out.iterdir()) and not options.overwrite and not (out / "export.json").exists():
            out = out / f"export-{dt.datetime.now():%Y%m%d-%H%M%S}"  # a folder of other things: export beside them
        ws = self.ws

        def job(progress: Any, cancel: Any) -> ExportReport:
            return export(ws, out, selection, options, progress=progress, cancel=cancel)

        self._worker = run_task(job, self._on_done, self._on_fail, self._on_progress)
        self.export_button.setEnabled(False)
        self.close_button.setText("Cancel")
        self.progress.setVisible(True)
        self.progress.setRange(0, 0)

    def _on_progress(self, done: int, total: int) -> None:
        self.progress.setRange(0, max(total, 0))
        self.progress.setValue(done)
        self.progress.setFormat("exporting %v of %m frames")

    def _on_done(self, report: ExportReport) -> None:
        self._worker = None
        self.progress.setVisible(False)
        self.close_button.setText("Close")
        self.export_button.setEnabled(True)
        skipped = f"; {len(report.skipped)} frames could not be read (see export.json)" if report.skipped else ""
        self.preview_note.setText(f"Exported {report.rows} frames to {report.outdir}{skipped}.")
        self.export_did_finish.emit(report)

    def _on_fail(self, message: str) -> None:
        self._worker = None
        self.progress.setVisible(False)
        self.close_button.setText("Close")
        self._show_problem(f"Export failed: {message}")
        self.export_button.setEnabled(True)
        self.export_did_fail.emit(message)

    def _close_or_cancel(self) -> None:
        if self._worker is not None:
            self._worker.cancel.set()
            return
        self.reject()

    def done(self, r: int) -> None:  # noqa: D401 - a running export is stopped first
        if self._worker is not None:
            self._worker.cancel.set()
        super().done(r)

