"""The supervisor's view: a target-recall slider with a preview of its cost before
anything is saved, the measured recall, and charts (QtCharts). Layout only."""

from __future__ import annotations

from typing import Any

from PySide6.QtCharts import QBarCategoryAxis, QBarSeries, QBarSet, QChart, QChartView, QLineSeries, QValueAxis
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QPainter
from PySide6.QtWidgets import QGridLayout, QHBoxLayout, QLabel, QPushButton, QSlider, QVBoxLayout, QWidget


def _chart(title: str) -> tuple[QChart, QChartView]:
    chart = QChart()
    chart.setTitle(title)
    chart.legend().setAlignment(Qt.AlignmentFlag.AlignBottom)
    view = QChartView(chart)
    view.setRenderHint(QPainter.RenderHint.Antialiasing)
    view.setMinimumHeight(240)
    return chart, view


class SupervisorView(QWidget):
    user_did_preview = Signal(float)  # target recall
    user_did_apply = Signal(float)

    def __init__(self) -> None:
        super().__init__()
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setRange(500, 999)  # per mille
        self.slider.setValue(950)
        self.target_label = QLabel()
        self.preview = QLabel("Move the slider to see what a target costs.")
        self.preview.setWordWrap(True)
        self.apply_button = QPushButton("Apply policy")
        self.headline = QLabel()
        self.headline.setStyleSheet("font-size: 16px; font-weight: 600;")
        self.headline.setWordWrap(True)
        self.curve_chart, curve_view = _chart("Recall against workload (labels so far)")
        self.hist_chart, hist_view = _chart("Scores of accepted and rejected frames")
        self.audit_chart, audit_view = _chart("Audit of dropped frames")
        self.reviewers_chart, reviewers_view = _chart("Reviewers: decisions (and decisions per hour of review)")

        top = QHBoxLayout()
        top.addWidget(QLabel("Target recall"))
        top.addWidget(self.slider, 1)
        top.addWidget(self.target_label)
        top.addWidget(self.apply_button)
        grid = QGridLayout()
        grid.addWidget(curve_view, 0, 0)
        grid.addWidget(hist_view, 0, 1)
        grid.addWidget(audit_view, 1, 0)
        grid.addWidget(reviewers_view, 1, 1)
        layout = QVBoxLayout(self)
        layout.addWidget(self.headline)
        layout.addLayout(top)
        layout.addWidget(self.preview)
        layout.addLayout(grid, 1)
        self.slider.valueChanged.connect(self._on_slider)
        self.slider.sliderReleased.connect(lambda: self.user_did_preview.emit(self.target))
        self.apply_button.clicked.connect(lambda: self.user_did_apply.emit(self.target))
        self._on_slider(self.slider.value())

    @property
    def target(self) -> float:
        return self.slider.value() / 1000.0

    def _on_slider(self, value: int) -> None:
        self.target_label.setText(f"{value / 10:.1f} %")

    def show_preview(self, text: str) -> None:
        self.preview.setText(text)

    def show_data(self, data: dict[str, Any]) -> None:
        r = data["report"]
        rec = r["recall_estimate"]
        self.headline.setText(
            f"Measured recall {'—' if rec is None else f'{rec:.1%}'} "
            f"(95 % interval {r['recall_ci_low']:.1%}–{r['recall_ci_high']:.1%})  ·  "
            f"{r['candidates']} candidates = {r['workload_fraction']:.1%} of {r['scored']} scored frames  ·  "
            f"{r['reviewed']} reviewed, {r['accepted']} accepted")
        self._line(self.curve_chart, data["curve"])
        self._hist(self.hist_chart, data["histograms"])
        self._bars(self.audit_chart, ["audited", "positive", "waiting"],
                   {"dropped frames": [r["audit_sampled"], r["audit_positives"], r["audit_waiting"]]})
        revs = data["reviewers"]
        names = [f"{x['reviewer']} ({x['per_hour']:,.0f}/h)" if x["per_hour"] else x["reviewer"] for x in revs]
        self._bars(self.reviewers_chart, names or ["—"], {"decisions": [x["decisions"] for x in revs] or [0]})

    def _line(self, chart: QChart, curve: list[dict[str, float]]) -> None:
        chart.removeAllSeries()
        for axis in chart.axes():
            chart.removeAxis(axis)
        est, low = QLineSeries(), QLineSeries()
        est.setName("estimated recall")
        low.setName("95 % lower bound")
        for p in curve:
            if p["recall"] == p["recall"]:
                est.append(p["workload"] * 100, p["recall"] * 100)
            low.append(p["workload"] * 100, p["lower"] * 100)
        x, y = QValueAxis(), QValueAxis()
        x.setRange(0, 100)
        x.setTitleText("frames reviewed (%)")
        y.setRange(0, 100)
        y.setTitleText("recall (%)")
        chart.addAxis(x, Qt.AlignmentFlag.AlignBottom)
        chart.addAxis(y, Qt.AlignmentFlag.AlignLeft)
        for s in (est, low):
            chart.addSeries(s)
            s.attachAxis(x)
            s.attachAxis(y)

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
        y.setRange(0, top * 1.1)
        y.setLabelFormat("%d")
        chart.addAxis(x, Qt.AlignmentFlag.AlignBottom)
        chart.addAxis(y, Qt.AlignmentFlag.AlignLeft)
        series.attachAxis(x)
        series.attachAxis(y)
