"""The supervisor's view: a target-recall slider with a preview of its cost before
anything is saved, the measured recall, and charts (QtCharts). Layout only."""

from __future__ import annotations

import html
from typing import Any

from PySide6.QtCharts import QBarCategoryAxis, QBarSeries, QBarSet, QChart, QChartView, QLineSeries, QValueAxis
from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QBrush, QColor, QPainter
from PySide6.QtWidgets import (
    QComboBox,
    QGridLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QSlider,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from triage_app.gui import theme


def _table(headers: list[str]) -> QTableWidget:
    t = QTableWidget(0, len(headers))
    t.setHorizontalHeaderLabels(headers)
    t.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
    t.horizontalHeader().setStretchLastSection(True)
    t.verticalHeader().setVisible(False)
    t.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
    return t


def _chart(title: str) -> tuple[QChart, QChartView]:
    chart = QChart()
    chart.setTitle(title)
    chart.legend().setAlignment(Qt.AlignmentFlag.AlignBottom)
    view = QChartView(chart)
    view.setRenderHint(QPainter.RenderHint.Antialiasing)
    view.setMinimumHeight(240)
    return chart, view


def count_ticks(top: float, most: int = 6) -> tuple[int, int]:
    """(step, tick count) of an axis of counts from 0 past ``top``: whole-number steps of
    1, 2 or 5 times a power of ten, so every label is a count and none repeats."""
    import math

    need = max(1.0, float(top)) / (most - 1)
    power = 10 ** max(0, math.floor(math.log10(need)))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= need)
    ticks = int(math.floor(max(1.0, float(top)) / step)) + 2  # one step of headroom above the tallest bar
    return int(step), ticks


ASSURANCE_LEVELS = (0.95, 0.8, 0.5)


def assurance_text(value: float) -> str:
    if value >= 0.95:
        return f"{value:.0%} sure (strict)"
    if value <= 0.5:
        return "50 % (point estimate)"
    return f"{value:.0%} sure"


#: How long the slider must rest before its target is previewed.
PREVIEW_SETTLE_MS = 350


class SupervisorView(QWidget):
    user_did_preview = Signal(float)  # target recall
    user_did_apply = Signal(float)

    def __init__(self) -> None:
        super().__init__()
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setRange(500, 999)  # per mille
        self.slider.setValue(950)
        self.target_label = QLabel()
        self.assurance = QComboBox()
        self.assurance.setToolTip(
            "How sure the policy must be of reaching the target. Strict (95 %) keeps almost every frame while labels "
            "are few; the point estimate (50 %) cuts the work much earlier, at about even odds of falling short.")
        for value in ASSURANCE_LEVELS:
            self.assurance.addItem(assurance_text(value), value)
        self.assurance.setCurrentIndex(0)
        self.preview = QLabel("Move the slider to see what a target costs.")
        self.preview.setWordWrap(True)
        self.apply_button = QPushButton("Apply policy")
        self.headline = QLabel()
        self.headline.setWordWrap(True)
        self.curve_chart, curve_view = _chart("Recall against workload (labels so far)")
        self.hist_chart, hist_view = _chart("Scores of accepted and rejected frames")
        self.audit_chart, audit_view = _chart("Audit of dropped frames")
        self.reviewers_chart, reviewers_view = _chart("Reviewers: decisions (and decisions per hour of review)")
        self.restyle()

        top = QHBoxLayout()
        top.addWidget(QLabel("Target recall"))
        top.addWidget(self.slider, 1)
        top.addWidget(self.target_label)
        top.addSpacing(12)
        top.addWidget(QLabel("Assurance"))
        top.addWidget(self.assurance)
        top.addWidget(self.apply_button)
        grid = QGridLayout()
        grid.addWidget(curve_view, 0, 0)
        grid.addWidget(hist_view, 0, 1)
        grid.addWidget(audit_view, 1, 0)
        grid.addWidget(reviewers_view, 1, 1)
        self.drift_table = _table(["flight", "drift (PSI)", "alert", "largest shifts", "flagged", "accepted",
                                   "compared with"])
        self.agreement_table = _table(["reviewers", "frames both decided", "agreement", "Cohen's kappa"])
        self.agreement_note = QLabel()
        agreement_page = QWidget()
        al = QVBoxLayout(agreement_page)
        al.setContentsMargins(0, 0, 0, 0)
        al.addWidget(self.agreement_table, 1)
        al.addWidget(self.agreement_note)
        self.quality_tabs = QTabWidget()
        self.quality_tabs.addTab(self.drift_table, "Drift per flight")
        self.quality_tabs.addTab(agreement_page, "Reviewer agreement")
        self.quality_tabs.setMinimumHeight(170)
        grid.addWidget(self.quality_tabs, 2, 0, 1, 2)
        layout = QVBoxLayout(self)
        layout.addWidget(self.headline)
        layout.addLayout(top)
        layout.addWidget(self.preview)
        layout.addLayout(grid, 1)
        # The preview follows the slider however it moves (mouse, arrows, Home, PageUp...), once
        # it has settled: a drag or a held key asks for one preview, not one per step.
        self._settle = QTimer(self)
        self._settle.setSingleShot(True)
        self._settle.setInterval(PREVIEW_SETTLE_MS)
        self._settle.timeout.connect(lambda: self.user_did_preview.emit(self.target))
        self._quiet = False  # set while the program (not a person) moves the slider
        self.slider.valueChanged.connect(self._on_slider)
        self.slider.sliderReleased.connect(self._preview_now)
        self.apply_button.clicked.connect(lambda: self.user_did_apply.emit(self.target))
        self.assurance.activated.connect(lambda _i: self.user_did_preview.emit(self.target))
        self.target_label.setText(f"{self.slider.value() / 10:.1f} %")

    @property
    def target(self) -> float:
        return self.slider.value() / 1000.0

    @property
    def confidence(self) -> float:
        return float(self.assurance.currentData())

    def set_confidence(self, value: float) -> None:
        """Show the assurance in force (adding it to the choices when it is not one of them)."""
        i = self.assurance.findData(float(value))
        if i < 0:
            self.assurance.addItem(assurance_text(value), float(value))
            i = self.assurance.count() - 1
        self.assurance.setCurrentIndex(i)

    def _on_slider(self, value: int) -> None:
        self.target_label.setText(f"{value / 10:.1f} %")
        if not self._quiet and not self.slider.isSliderDown():
            self._settle.start()

    def _preview_now(self) -> None:
        self._settle.stop()
        self.user_did_preview.emit(self.target)

    def set_target(self, value: float) -> None:
        """Show the target in force without asking for a preview of it."""
        self._quiet = True
        try:
            self.slider.setValue(int(round(min(max(value, 0.5), 0.999) * 1000)))
        finally:
            self._quiet = False

    def show_preview(self, text: str) -> None:
        self.preview.setText(text)

    def show_data(self, data: dict[str, Any]) -> None:
        r = {**data["report"], **(data["report"].get("policy_in_force") or {})}  # the policy's own numbers (active review's: below)
        rec = r["recall_estimate"]
        unaudited = int(r.get("unaudited_dropped", 0))
        # "Measured" only when every dropped frame lies in an audit stratum; otherwise part of
        # the figure is a model-based estimate, and the headline says so.
        policy_line = (f"{'Estimated' if unaudited else 'Measured'} recall {'—' if rec is None else f'{rec:.1%}'} "
                       f"(95 % interval {r['recall_ci_low']:.1%}–{r['recall_ci_high']:.1%})  ·  "
                       f"{r['candidates']} candidates = {r['workload_fraction']:.1%} of {r['scored']} scored frames  ·  "
                       f"{r['reviewed']} reviewed, {r['accepted']} accepted")
        policy_tip = (f"{unaudited} dropped frames have not been considered for the audit (the audit is off, or has not run "
                      "since the policy changed): their positives are estimated from reviewed frames of similar score, "
                      "not measured." if unaudited else
                      "Recall of the policy in force: positives among the candidates, and among the dropped frames as "
                      "measured by the blind audit samples.")
        active = data["report"].get("active_review")
        if active is not None:
            # Active review: the recall reached so far is the headline; what it rests on is named.
            colour = theme.tone("good") if active["reached"] else theme.tone("text")
            rest = html.escape(" · ".join(x for x in (active["lines"][1], active["next"]) if x))
            self.headline.setText(
                f"<span style='color:{colour}'>{html.escape(active['headline'])}</span><br>"
                f"<span style='{theme.text_size(1.0)} font-weight:400'>{rest}</span>")
            self.headline.setToolTip("<br>".join(html.escape(x) for x in active["lines"])
                                     + "<br><br>Policy in force (for review by threshold): " + html.escape(policy_line))
        else:
            self.headline.setText(html.escape(policy_line))
            self.headline.setToolTip(policy_tip)
        self._hist(self.hist_chart, data["histograms"])
        if active is not None:
            self._active_charts(active)
        else:
            self.curve_chart.setTitle("Recall against workload (labels so far)")
            self._line(self.curve_chart, data["curve"])
            self.audit_chart.setTitle("Audit of dropped frames")
            self._bars(self.audit_chart, ["audited", "positive", "waiting", "not considered"],
                       {"dropped frames": [r["audit_sampled"], r["audit_positives"], r["audit_waiting"], unaudited]})
        revs = data["reviewers"]
        names = [f"{x['reviewer']} ({x['per_hour']:,.0f}/h)" if x["per_hour"] else x["reviewer"] for x in revs]
        self._bars(self.reviewers_chart, names or ["—"], {"decisions": [x["decisions"] for x in revs] or [0]})
        self._drift(data.get("drift", []), data.get("alert_psi", 0.25))
        self._agreement(data.get("agreement", []), data.get("disagreements", 0))

    def restyle(self) -> None:
        """The headline's size and the charts' look for the current look and text size (``theme``)."""
        self.headline.setStyleSheet(f"{theme.text_size(1.35)} font-weight: 600;")
        look = QChart.ChartTheme.ChartThemeDark if theme.current() == "dark" else QChart.ChartTheme.ChartThemeLight
        for chart in (self.curve_chart, self.hist_chart, self.audit_chart, self.reviewers_chart):
            if chart.theme() != look:
                chart.setTheme(look)

    def _drift(self, flights: list[dict[str, Any]], alert: float) -> None:
        t = self.drift_table
        t.setRowCount(len(flights))
        alerts = 0
        for r, f in enumerate(flights):
            acc = "—" if f["accept_rate"] is None else f"{f['accept_rate']:.0%} of {f['decisions']}"
            if f["accept_rate"] is not None and f["reference_accept_rate"] is not None:
                acc += f" (ref {f['reference_accept_rate']:.0%})"
            flag = f"{f['flag_rate']:.0%}" + ("" if f["reference_flag_rate"] is None else f" (ref {f['reference_flag_rate']:.0%})")
            cells = [f["name"], "—" if f["drift"] is None else f"{f['drift']:.2f}", "ALERT" if f["alert"] else "",
                     ", ".join(f["reasons"][:2]) or f["note"], flag, acc, f["reference"]]
            for c, text in enumerate(cells):
                item = QTableWidgetItem(text)
                if f["alert"]:
                    item.setBackground(QBrush(QColor(theme.tone("alert_row"))))
                t.setItem(r, c, item)
            alerts += bool(f["alert"])
        self.quality_tabs.setTabText(0, f"Drift per flight ({alerts} past {alert:g})" if alerts else "Drift per flight")

    def _agreement(self, pairs: list[dict[str, Any]], disputed: int) -> None:
        t = self.agreement_table
        t.setRowCount(len(pairs))
        for r, p in enumerate(pairs):
            kappa = "n/a" if p["kappa"] is None else f"{p['kappa']:.2f}"
            for c, text in enumerate([" / ".join(p["reviewers"]), str(p["frames"]), f"{p['agreement']:.0%}", kappa]):
                t.setItem(r, c, QTableWidgetItem(text))
        self.agreement_note.setText(
            (f"{disputed} disagreements wait in the resolve queue (toolbar: Resolve disagreements)." if disputed else
             "No disagreement waits for a supervisor.")
            + ("" if pairs else " No frame has been decided by two reviewers yet."))

    def _line(self, chart: QChart, curve: list[dict[str, float]]) -> None:
        est = [(p["workload"] * 100, p["recall"] * 100) for p in curve if p["recall"] == p["recall"]]
        low = [(p["workload"] * 100, p["lower"] * 100) for p in curve]
        self._lines(chart, {"estimated recall": est, "95 % lower bound": low})

    def _lines(self, chart: QChart, curves: dict[str, list[tuple[float, float]]]) -> None:
        """Lines in per cent against frames reviewed (per cent), one per named curve."""
        chart.removeAllSeries()
        for axis in chart.axes():
            chart.removeAxis(axis)
        x, y = QValueAxis(), QValueAxis()
        x.setRange(0, 100)
        x.setTitleText("frames reviewed (%)")
        y.setRange(0, 100)
        y.setTitleText("recall (%)")
        chart.addAxis(x, Qt.AlignmentFlag.AlignBottom)
        chart.addAxis(y, Qt.AlignmentFlag.AlignLeft)
        for name, points in curves.items():
            line = QLineSeries()
            line.setName(name)
            for px, py in points:
                line.append(px, py)
            chart.addSeries(line)
            line.attachAxis(x)
            line.attachAxis(y)

    def _active_charts(self, active: dict[str, Any]) -> None:
        """Active review: targets found along the review and what the next frames should add
        (model-based), against the target; the blind audit of the unreviewed frames."""
        gain = active.get("gain_curve") or {}
        done = [(px * 100, py * 100) for px, py in gain.get("done", [])]
        ahead = [(px * 100, py * 100) for px, py in gain.get("ahead", [])]
        target = active["target"] * 100
        self.curve_chart.setTitle("Active review: targets found against frames reviewed")
        self._lines(self.curve_chart, {"found so far (share of the estimated targets)": done,
                                       "expected next (model-based)": ahead,
                                       f"target {target:.0f} %": [(0.0, target), (100.0, target)]})
        self.audit_chart.setTitle("Blind audit of the frames not reviewed")
        self._bars(self.audit_chart, ["drawn at random", "held the target"],
                   {"audit draws decided": [active["audit_draws"], active["audit_positives"]]})

    def _hist(self, chart: QChart, hists: dict[str, dict[str, list[int]]]) -> None:
        series: dict[str, list[int]] = {}
        cats: list[str] = []
        for member, h in hists.items():
            for label in ("accepted", "rejected"):
                series[f"{member} {label}"] = h[label]
            cats = [f"{i / len(h['accepted']):.1f}" for i in range(len(h["accepted"]))]
        self._bars(chart, cats or ["—"], series or {"no labels yet": [0]})

    def _bars(self, chart: QChart, categories: list[str], values: dict[str, list[int]]) -> None:
        chart.removeAllSeries()
        for axis in chart.axes():
            chart.removeAxis(axis)
        series = QBarSeries()
        top = 1
        for name, vals in values.items():
            s = QBarSet(name)
            for v in vals:
                s.append(float(v))
                top = max(top, v)
            series.append(s)
        chart.addSeries(series)
        x = QBarCategoryAxis()
        x.append(categories)
        y = QValueAxis()
        step, ticks = count_ticks(top)
        y.setRange(0, step * (ticks - 1))
        y.setTickCount(ticks)
        y.setLabelFormat("%d")
        chart.addAxis(x, Qt.AlignmentFlag.AlignBottom)
        chart.addAxis(y, Qt.AlignmentFlag.AlignLeft)
        series.attachAxis(x)
        series.attachAxis(y)
