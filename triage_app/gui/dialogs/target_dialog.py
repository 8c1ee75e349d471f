""""What are you looking for?": the project's target, from the shipped table or the user's
own classes and prompts. Asked when a project is new, changeable from the toolbar."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QVBoxLayout,
    QWidget,
)

from triage_app.core.model.errors import TriageError
from triage_app.core.model.targets import Target, TargetTable, load_targets, resolve_target
from triage_app.gui import theme

CUSTOM = "__custom__"


def _split(text: str) -> list[str]:
    return [p.strip() for p in text.replace("\n", ";").split(";") if p.strip()]


class TargetDialog(QDialog):
    """Pick a target; ``chosen()`` gives (name, classes, prompts, size) for ``Workspace.set_target``."""

    def __init__(self, current: Target | None, parent: QWidget | None = None, table: TargetTable | None = None,
                 frames: int = 0) -> None:
        super().__init__(parent)
        self.setWindowTitle("What are you looking for?")
        self.table = table or load_targets()
        self.list = QListWidget()
        for name in self.table.names():
            t = self.table.targets[name]
            item = QListWidgetItem(f"{t.label or name}  ·  about {t.size_m:g} m across")
            item.setData(Qt.ItemDataRole.UserRole, name)
            item.setToolTip(self._explain(t))
            self.list.addItem(item)
        custom = QListWidgetItem("Something else: my own classes and prompts")
        custom.setData(Qt.ItemDataRole.UserRole, CUSTOM)
        self.list.addItem(custom)
        self.list.setFixedHeight(self.list.count() * self.list.sizeHintForRow(0) + 2 * self.list.frameWidth() + 4)

        self.custom_box = QWidget()
        form = QFormLayout(self.custom_box)
        form.setContentsMargins(0, 0, 0, 0)
        self.custom_name = QLineEdit()
        self.custom_name.setPlaceholderText("a short name, e.g. life_raft")
        self.custom_prompts = QLineEdit()
        self.custom_prompts.setPlaceholderText("an aerial photo of a life raft; a drone photo of an orange raft")
        self.custom_classes = QLineEdit()
        self.custom_classes.setPlaceholderText("ImageNet classes, e.g. lifeboat; speedboat (optional)")
        self.custom_size = QDoubleSpinBox()
        self.custom_size.setRange(0.1, 500.0)
        self.custom_size.setValue(1.0)
        self.custom_size.setSuffix(" m across")
        form.addRow("Name", self.custom_name)
        form.addRow("CLIP prompts", self.custom_prompts)
        form.addRow("ImageNet classes", self.custom_classes)
        form.addRow("Size on the ground", self.custom_size)

        self.details = QLabel()
        self.details.setWordWrap(True)
        self.details.setStyleSheet(f"color: {theme.tone('secondary')};")
        self.problem = QLabel()
        self.problem.setWordWrap(True)
        self.problem.setStyleSheet(f"color: {theme.tone('error')};")
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        self.buttons.accepted.connect(self._accept)
        self.buttons.rejected.connect(self.reject)

        intro = QLabel("The review order starts from the models' zero-shot scores for this target, then learns from "
                       "every accept and reject. The table is editable (resources/targets.toml; your own targets.toml "
                       "beside your settings adds to it)."
                       + (f" Changing it scores the project's {frames:,} frames again for the new target." if frames else ""))
        intro.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.addWidget(intro)
        layout.addWidget(self.list)
        layout.addWidget(self.custom_box)
        layout.addWidget(self.details)
        layout.addWidget(self.problem)
        layout.addWidget(self.buttons)
        self.list.currentItemChanged.connect(lambda *_: self._update())
        self._select(current)
        self.resize(560, self.sizeHint().height())

    @staticmethod
    def _explain(t: Target) -> str:
        classes = ", ".join(t.imagenet_classes[:8]) + (" …" if len(t.imagenet_classes) > 8 else "")
        prompts = "; ".join(t.prompts[:3]) + (" …" if len(t.prompts) > 3 else "")
        return (f"ImageNet classes: {classes or 'none (the ImageNet member gives embeddings only)'}\n"
                f"CLIP prompts: {prompts or 'made from the name'}")

    def _select(self, current: Target | None) -> None:
        want = CUSTOM if current is not None and current.name not in self.table.targets else (current.name if current else "")
        for i in range(self.list.count()):
            if self.list.item(i).data(Qt.ItemDataRole.UserRole) == want:
                self.list.setCurrentRow(i)
                break
        else:
            self.list.setCurrentRow(0)
        if current is not None and want == CUSTOM:
            self.custom_name.setText(current.name)
            self.custom_prompts.setText("; ".join(current.prompts))
            self.custom_classes.setText("; ".join(current.imagenet_classes))
            self.custom_size.setValue(current.size_m)
        self._update()

    def _key(self) -> str:
        item = self.list.currentItem()
        return item.data(Qt.ItemDataRole.UserRole) if item is not None else ""

    def _update(self) -> None:
        key = self._key()
        self.custom_box.setVisible(key == CUSTOM)
        self.details.setText("" if key == CUSTOM or key not in self.table.targets
                             else self._explain(self.table.targets[key]).replace("\n", "<br>"))
        self.problem.setText("")

    def chosen(self) -> tuple[str, list[str], list[str], float | None]:
        """(name, ImageNet classes, prompts, size in metres) as the project's settings keep them."""
        key = self._key()
        if key != CUSTOM:
            return key, [], [], None
        name = self.custom_name.text().strip().replace(" ", "_")
        return name, _split(self.custom_classes.text()), _split(self.custom_prompts.text()), float(self.custom_size.value())

    def _accept(self) -> None:
        name, classes, prompts, size = self.chosen()
        if not name:
            self.problem.setText("Give the target a name.")
            return
        try:
            resolve_target(name, classes, prompts, size_m=size, table=self.table)
        except TriageError as exc:
            self.problem.setText(str(exc))
            return
        self.accept()
