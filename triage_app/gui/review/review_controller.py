"""Drives the review view from the core ReviewSession: what to show, decisions, undo,
live refresh while scoring runs, frames decoded ahead on a worker."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QTimer, Signal
from PySide6.QtGui import QImage

from triage_app.core.model.errors import StoreError, StoreUnavailable
from triage_app.core.review.pace import Pace
from triage_app.core.store import Workspace
from triage_app.gui.review.candidate_text import MARK, PAST, grid_boxes, score_bar, short_time
from triage_app.gui.review.exact_frames import ExactFrames
from triage_app.gui.review.frame_loader import FrameLoader, to_qimage
from triage_app.gui.review.review_view import ReviewView, member_colour
from triage_app.gui.review.session_summary import keep_summary, last_summary
from triage_app.gui.tasks import Task, run_task

log = logging.getLogger(__name__)
PREFETCH_AHEAD = 6
GRID_SIZE = 9
FILM_RADIUS = 3

#: How often a decision waiting for the database is sent again (milliseconds).
RESEND_MS = 5000


class ReviewController(QObject):
    queue_did_change = Signal(int)  # candidates left
    decision_did_record = Signal(int)  # decisions made in this session
    decision_did_undo = Signal(int)  # decisions taken back (the standing labels changed)
    frame_did_show = Signal(int)  # frame id now on screen (with its picture)
    review_did_fail = Signal(str)
    position_did_copy = Signal(str)  # what went to the clipboard, said in words
    target_did_reach = Signal(str)  # active review reached the target recall: what to tell the analyst

    def __init__(self, view: ReviewView) -> None:
        super().__init__()
        self.view = view
        self.session: Any = None
        self.loader: FrameLoader | None = None
        self.thumbs: FrameLoader | None = None
        self.exact: ExactFrames | None = None  # the exact frame behind a kept picture
        self._showing: int | None = None  # the frame whose picture is on screen
        self._batches: list[dict[int, str]] = []  # each key's decisions, newest last (what an undo brings back)
        self._marks: dict[int, str] = {}  # the marks an undone page comes back with
        self.ws: Workspace | None = None
        self._current_info: dict[str, Any] | None = None
        self._film_wanted: list[int] = []  # filmstrip pictures waiting for the candidates' own
        self.finds: list[Any] = []  # the accepted frames so far, for naming a candidate's neighbours
        self.decisions_made = 0
        self.pace = Pace()  # this session's decisions and working time, for pace and summary
        self._pace_root: Any = None
        self._film: set[int] = set()  # the frames on the filmstrip
        self._refreshing: Task | None = None
        self._refresh_again = False
        self._said_reached = False
        #: Whether a background task of a kind runs (the window sets it; nothing runs without one).
        self.busy: Callable[[str], bool] = lambda _what: False
        view.user_did_decide.connect(self.decide)
        view.user_did_decide_event.connect(self.decide_event)
        view.user_did_decide_grid.connect(self.decide_grid)
        view.user_did_undo.connect(self.undo)
        view.user_did_move.connect(self.move)
        view.user_did_toggle_grid.connect(self.set_grid)
        view.user_did_copy_position.connect(self.copy_position)
        view.user_did_ask_more.connect(self.ask_more)
        view.user_did_ask_clip.connect(self.play_clip)
        self._clip_task: Task | None = None
        #: Sends a decision that waits for the database (a team store out of reach) every few seconds.
        self._resend = QTimer(self)
        self._resend.setInterval(RESEND_MS)
        self._resend.timeout.connect(self.send_pending)

    # -- set-up ---------------------------------------------------------------------------
    def start(self, ws: Workspace, resolve: bool = False) -> None:
        """Open the queue; with ``resolve``, the supervisor's queue of disagreements."""
        from triage_app.core.review.session import ReviewSession

        self.stop()
        self.ws = ws
        if self._pace_root != ws.root:  # another project: a new session (a rebuilt queue is not)
            self.pace, self._pace_root = Pace(), ws.root
        self.session = ReviewSession(ws, resolve=resolve)
        self._said_reached = self.session.target_reached  # said once, when it happens
        self.loader = FrameLoader(ws, capacity=48)
        self.loader.frame_did_load.connect(self._on_frame_loaded)
        self.loader.frame_did_fail.connect(self._on_frame_failed)
        self.thumbs = FrameLoader(ws, capacity=128, thumb_size=480)  # the grid's thumbnails grow with the window
        self.thumbs.frame_did_load.connect(self._on_thumb_loaded)
        self.exact = ExactFrames(ws)
        self.exact.exact_did_load.connect(self._on_exact_loaded)
        self.view.canvas.zoom_did_start.connect(self.exact.now)
        self.show_current()
        self.exact.make_missing([x.frame_id for x in self.session.queue.items])
        self.view.show_feedback(last_summary(ws, self.session.reviewer) or "")  # nothing left from another project

    def end_session(self) -> None:
        """The session's summary, into the log file and the project (said at the next opening)."""
        if self.pace.decided and self.ws is not None:
            keep_summary(self.ws, self.pace.summary(), self.session.reviewer if self.session is not None
                         else self.ws.settings.review.reviewer)

    def stop(self) -> None:
        for loader in (self.loader, self.thumbs, self.exact):
            if loader is not None:
                loader.close()
        if self.exact is not None:
            self.view.canvas.zoom_did_start.disconnect(self.exact.now)
        self.loader = self.thumbs = self.exact = None
        self._resend.stop()
        if self.session is not None:
            self.session.close()  # the frame on screen goes back to the team's pool
        self.session = None

    def refresh(self) -> None:
        """New scores or a new policy: rebuild the queue on a worker (the analyst keeps
        deciding meanwhile), then put it in place keeping the analyst's place."""
        if self.session is None:
            return
        if self._refreshing is not None:
            self._refresh_again = True  # one more rebuild once this one lands
            return
        session = self.session
        build = session.begin_refresh()
        self._refreshing = run_task(lambda progress, cancel: build(), lambda built: self._refreshed(session, built),
                                    self._refresh_failed)

    def _refreshed(self, session: Any, built: Any) -> None:
        self._refreshing = None
        if session is not self.session:  # the review was restarted meanwhile
            if self._refresh_again:
                self._refresh_again = False
                self.refresh()
            return
        was_empty = session.current is None
        joined = session.apply_refresh(built)
        if joined < 0 or self._refresh_again:  # an undo made it stale, or more changed since
            self._refresh_again = False
            self.refresh()
            if joined < 0:
                return
        self.queue_did_change.emit(len(session.queue))
        self._show_progress()
        if session.current is None:
            self.show_current()  # the target may just have been reached: say so
        elif joined and (was_empty or self.view.grid_mode):
            self.show_current()
        else:
            self._repaint_current()  # its scores may have changed (a retrain, a new member)

    def _repaint_current(self) -> None:
        """Redraw the candidate on screen with fresh scores and header, without counting it
        as shown again."""
        s = self.session
        if s is None or self.view.grid_mode or s.current is None:
            return
        c = s.current
        info = self._readable_info(c)
        if info is None:
            return
        self._current_info = info
        self.view.show_candidate(self._current_info, self._best_image(c.frame_id))

    def _refresh_failed(self, message: str) -> None:
        self._refreshing = None
        self._refresh_again = False
        self.review_did_fail.emit(f"The review queue could not be refreshed: {message}")

    # -- showing -------------------------------------------------------------------------------
    def _readable_info(self, c: Any) -> dict[str, Any] | None:
        """The panel's details of a queue item, or None (said on screen) while the project's
        database cannot be read (a team store out of reach)."""
        try:
            return self._info(c)
        except StoreError as exc:
            if self.session is None or self.session.pending is None:  # a waiting decision says it already
                self.view.show_feedback(f"Cannot read the project now: {exc}")
            return None

    def _info(self, c: Any) -> dict[str, Any]:
        s = self.session
        ws = self.ws
        frame = ws.frames.frame(c.frame_id)
        source = ws.frames.source(c.source_id)
        rows = sorted(ws.scores.frame_scores(c.frame_id), key=lambda r: -r["score"])
        tiles, bars = [], []
        members = sorted(ws.cards)  # every member keeps one colour from frame to frame
        # Neutral on purpose: audit samples (dropped frames) are mixed in blindly, so the
        # panel never says whether a frame passed the policy.
        for r in rows:
            box = (r["x0"], r["y0"], r["x1"] - r["x0"], r["y1"] - r["y0"]) if r["x0"] is not None else None
            tiles.append((r["member"], r["score"], box))
            colour = member_colour(r["member"], members)
            whole = box is not None and box[0] == 0 and box[1] == 0 and (box[2], box[3]) == (frame.get("width"), frame.get("height"))
            where = "on the whole frame" if whole or r["tiles"] <= 1 else f"in tile {r['tile'] + 1} of {r['tiles']}"
            th = (s.policy.thresholds if s.policy else {}).get(r["member"])
            # The bar with the member's threshold marked on it (a tick where the policy's cut lies).
            bar = score_bar(r["score"], th, colour)
            bars.append(
                f"<div><span style='color:{colour}'>■</span> <b>{r['member']}</b> {r['score']:.3f} {where}"
                + (f"; threshold {th:.3f}" if th is not None else "") + f"<br>{bar}</div>"
            )
        event_size = len(s.queue.event_members(c.event))
        tele = [f"time in video: {frame['timestamp_s']:.2f} s"]
        if frame.get("captured_at"):
            tele.append(f"captured: {frame['captured_at'][:23].replace('T', ' ')}")
        if frame.get("lat") is not None:
            tele.append(f"position: {frame['lat']:.6f}, {frame['lon']:.6f}")
        for key, label, unit in (("rel_alt", "height above take-off", "m"), ("abs_alt", "altitude", "m"),
                                 ("gimbal_pitch", "gimbal pitch", "°"), ("gimbal_yaw", "gimbal yaw", "°")):
            if frame.get(key) is not None:
                tele.append(f"{label}: {frame[key]:.1f} {unit}")
        position = None
        if frame.get("lat") is not None:
            position = (f"{frame['lat']:.6f}, {frame['lon']:.6f}", "the aircraft's position")
            geo = ws.settings.geo
            if geo is not None:
                from triage_app.core.ingest.telemetry.geo import ground_position
                from triage_app.core.model.policy import firing_tile

                # The tile of the member that fired most clearly against its threshold, as
                # the finds list and the export place it.
                member, box = firing_tile({r["member"]: r for r in rows}, s.policy.thresholds if s.policy else {})
                which = "outlined tile" if len(tiles) == 1 else f"{member}'s tile"
                placed = ground_position(frame, box, geo)
                if placed.point is not None:
                    p = placed.point
                    text = f"{p.lat:.6f}, {p.lon:.6f}"
                    within = f"within about {p.radius_m:.0f} m" if p.radius_m is not None else "uncertain: near the horizon"
                    tele.append(f"{which} on the ground: {text}, {within} ({p.distance_m:.0f} m at {p.bearing_deg:.0f}° "
                                f"from the aircraft; flat ground assumed, {p.hfov_deg:.0f}° field of view from the "
                                f"{p.hfov_from})")
                    position = (text, f"the {which}'s estimated position on the ground")
                    if p.radius_m is not None:
                        from triage_app.core.outputs.finds import near

                        places: dict[int, list[Any]] = {}
                        for f in near(self.finds, p.lat, p.lon, p.radius_m, exclude=c.frame_id):
                            places.setdefault(f.place, []).append(f)
                        for number, fs in list(places.items())[:3]:  # nearest places first
                            frames = ", ".join(f"{f.source} frame {f.frame}" for f in fs[:3]) + (" …" if len(fs) > 3 else "")
                            who = ", ".join(sorted({f.reviewer for f in fs}))
                            tele.append(f"overlaps place {number} (accepted by {who}): {frames}")
                else:
                    tele.append(f"{which} not placed on the ground: {placed.reason}")
        if frame.get("telemetry_matched") == 0:
            tele.append("no telemetry for this frame")
        return {
            "tiles": tiles, "members": members,
            "scores_html": "best tile per member (outlined)<br><br>" + "".join(bars),
            "telemetry": "\n".join(tele),
            "position": position,
            # How many wait is what moves as decisions are made (a decided frame leaves the queue, so
            # the one on screen is nearly always the first of them).
            "header": (f"{'Disagreements to resolve' if s.resolve else 'Waiting'}: {len(s.queue):,}"
                       + (f" (this is number {s.position + 1})" if s.position else "") + "  ·  "
                       f"event {c.event + 1} ({event_size} frame{'s' if event_size != 1 else ''})  ·  {source['name']} frame {frame['idx']}  ·  "
                       f"{self.decisions_made} decided this session{self._rate()}  ·  undo {s.undo_depth}"),
        }

    def set_finds(self, items: list[Any]) -> None:
        """The accepted frames changed: the panel names those a candidate overlaps."""
        self.finds = list(items)
        s = self.session
        if s is None or self.view.grid_mode or s.current is None or self._current_info is None:
            return
        # Only the panel's text: the picture, its zoom and the queue stay as they are.
        info = self._readable_info(s.current)
        if info is None:
            return
        self._current_info = info
        self.view.telemetry.setText(self._current_info["telemetry"])

    def play_clip(self) -> None:
        """The seconds of video around the candidate, read in the background, then played."""
        s, ws = self.session, self.ws
        if s is None or ws is None or s.current is None or self.view.grid_mode:
            self.view.show_feedback("Open a candidate first (G leaves grid mode).")
            return
        c = s.current
        source = ws.frames.source(c.source_id)
        if source["kind"] != "video":
            self.view.show_feedback("A still has no video around it: the filmstrip shows the frames before and after.")
            return
        if self._clip_task is not None:
            return
        from triage_app.core.ingest.clip import clip_around

        uri, t, frame_id = str(source["uri"]), float(c.timestamp_s), c.frame_id

        def shown(clip: Any) -> None:
            self._clip_task = None
            now = self.session.current if self.session is not None else None
            if now is None or now.frame_id != frame_id:
                return  # review moved on meanwhile
            self.view.play_clip([to_qimage(im) for im in clip.images], clip.times, clip.centre)

        def failed(message: str) -> None:
            self._clip_task = None
            self.view.show_feedback(f"The seconds around this frame cannot be played: {message}")

        self._clip_task = run_task(lambda progress, cancel: clip_around(uri, t), shown, failed)

    def copy_position(self) -> None:
        """Put the find's position on the clipboard: where the outlined tile lies on the ground
        when the telemetry allows, else where the aircraft was."""
        from PySide6.QtGui import QGuiApplication

        info = self._current_info
        if self.view.grid_mode:
            self.position_did_copy.emit("Grid mode shows many frames: open one (G) to copy its position.")
            return
        if info is None or info.get("position") is None:
            self.position_did_copy.emit("This frame has no position to copy.")
            return
        text, what = info["position"]
        QGuiApplication.clipboard().setText(text)
        self.position_did_copy.emit(f"Copied {text}: {what}.")

    def _rate(self) -> str:
        rate = self.pace.per_minute()
        return "" if rate is None else f" ({rate:.1f}/min)"

    def _show_progress(self) -> None:
        """The line under the header in active review: the recall reached and the target."""
        s = self.session
        p = s.progress if s is not None else None
        if p is None:
            self.view.show_progress("")
            return
        text = p.headline()
        if s.target_reached and s.keep_going:
            text += " · reviewing on (M was pressed)"
        elif not s.target_reached and p.next_points:
            text += " · " + p.next_points_text()
            until = self.pace.time_for(p.next_points[0][1])
            if until is not None:
                text += f" At your pace, {p.next_points[0][0]:.0%} is about {until} away."
        self.view.show_progress(text, reached=s.target_reached)
        if s.target_reached and not self._said_reached and p.settled:
            self._said_reached = True
            self.target_did_reach.emit(f"{p.headline()}.")
        elif s.target_reached and not self._said_reached:
            self._said_reached = True
            self.target_did_reach.emit(f"Target recall reached: {p.headline()}. The review queue holds back "
                                       f"{len(s.held):,} frames; press M in the review to keep reviewing.")

    def ask_more(self) -> None:
        """Keep reviewing after the target recall was reached: the held-back frames come back."""
        s = self.session
        if s is None:
            return
        if not s.target_reached:
            self.position_did_copy.emit("M keeps reviewing once the target recall is reached; it is not reached yet.")
            return
        n = s.keep_reviewing()
        self.position_did_copy.emit(f"Reviewing on: {n:,} more frames offered, the most likely first.")
        self.show_current()

    def show_current(self) -> None:
        s = self.session
        if s is None:
            return
        self.queue_did_change.emit(len(s.queue))
        self._show_progress()
        self._showing = None
        if self.view.grid_mode:
            self._current_info = None  # many frames on screen: none to copy a position from
            self._show_grid()
            return
        c = s.current
        if c is None:
            self._current_info = None
            if s.target_reached and s.held:
                p = s.progress
                self.view.show_empty(
                    f"Target recall reached: review can stop here.\n\n{p.headline().split(' · ')[0]}.\n"
                    f"{p.reviewed:,} frames reviewed, {p.found:,} targets found;\n"
                    f"{len(s.held):,} frames not reviewed are held back.\n\n"
                    "Press M to keep reviewing (the most likely frames first).")
            else:
                self.view.show_empty(self._empty_text())
            return
        image = self._best_image(c.frame_id)
        info = self._readable_info(c)
        if info is None:
            return  # the project cannot be read now: what is on screen stays, the message says why
        self._current_info = info
        self.view.show_candidate(self._current_info, image)
        self._showing = c.frame_id if image is not None else None
        if self.exact is not None:
            self.exact.shown(c.frame_id, image)
        if image is not None:
            s.mark_shown()
            self.frame_did_show.emit(c.frame_id)
        ahead = [x.frame_id for x in s.queue.items[s.position : s.position + PREFETCH_AHEAD + 1]]
        behind = [x.frame_id for x in s.queue.items[max(0, s.position - 1) : s.position]]
        self.loader.request(ahead + behind)
        self._show_filmstrip(c)

    def _empty_text(self) -> str:
        """Why nothing is offered, and what to do about it."""
        ws = self.ws
        frames = ws.frames.frame_count() if ws is not None else 0
        if frames == 0:
            return ("This project has no footage yet.\n\nDrop videos, image folders or stills on the window, "
                    "or use Add video… / Add image folder… in the toolbar.")
        if self.busy("Scoring") or self.busy("Ingest"):
            return "No candidate waiting yet: scoring runs.\n\nCandidates appear here as their frames are scored."
        scored = ws.scores.scored_count() if ws is not None else 0
        if scored < frames:
            return (f"{frames - scored:,} of {frames:,} frames are not scored yet.\n\n"
                    "Press Score in the toolbar to score them.")
        return ("Every candidate has been reviewed.\n\nThe Finds tab lists what was accepted; "
                "the Supervisor tab says what recall that reaches.")

    def _show_filmstrip(self, c: Any) -> None:
        near = self.ws.frames.neighbour_frames(c.source_id, c.idx, FILM_RADIUS)
        self._film = {int(r["id"]) for r in near}
        decided = self.ws.decisions.standing_labels(list(self._film))
        self.view.show_filmstrip([(r["id"], f"t={short_time(r['timestamp_s'])}" + MARK.get(decided.get(int(r["id"]), ""), ""),
                                   r["id"] == c.frame_id) for r in near])
        for r in near:
            img = self.thumbs.cached(r["id"])
            if img is not None:
                self.view.set_filmstrip_thumbnail(r["id"], img)
        self._film_wanted = [int(r["id"]) for r in near]
        self._feed_film()

    def _feed_film(self) -> None:
        """The filmstrip's pictures are decoded once the candidates' own are (the two loaders
        share the cores, and the analyst waits on the candidate, not on its neighbours)."""
        if self.thumbs is None or not self._film_wanted or (self.loader is not None and self.loader.busy()):
            return
        wanted, self._film_wanted = self._film_wanted, []
        self.thumbs.request(wanted)

    def _show_grid(self) -> None:
        s = self.session
        page = s.queue.items[s.position : s.position + GRID_SIZE]
        if not page:
            self.view.grid.clear()
            self.view.header.setText("No candidate waiting.")
            return
        marks, self._marks = {**self.view.grid.marks(), **self._marks}, {}  # a page drawn again keeps its marks
        self.view.grid.show_items([(c.frame_id, f"t={short_time(c.timestamp_s)}") for c in page],
                                  grid_boxes(self.ws, [c.frame_id for c in page]))
        self.view.grid.set_marks(marks)
        for c in page:
            img = self.thumbs.cached(c.frame_id)
            if img is not None:
                self.view.grid.set_thumbnail(c.frame_id, img)
        self.thumbs.request([c.frame_id for c in page])
        self.view.header.setText(
            f"Grid: candidates {s.position + 1}-{s.position + len(page)} of {len(s.queue)}  ·  "
            "1-9 or click marks accepted (again: unsure) · R decides the page (the rest rejected) · G back")
        s.mark_shown()

    def _on_frame_loaded(self, frame_id: int, image: QImage) -> None:
        s = self.session
        if (s is not None and not self.view.grid_mode and s.current is not None and s.current.frame_id == frame_id
                and self._showing != frame_id):  # not when its picture is on screen already
            self.view.show_candidate(self._current_info, image)
            self._showing = frame_id
            if self.exact is not None:
                self.exact.shown(frame_id, image)
            s.mark_shown()
            self.frame_did_show.emit(frame_id)
        self._feed_film()

    def _best_image(self, frame_id: int) -> QImage | None:
        """The frame's picture at hand: the exact one where it was decoded, else the quick one."""
        exact = self.exact.loader.cached(frame_id) if self.exact is not None else None
        return exact if exact is not None else (self.loader.cached(frame_id) if self.loader is not None else None)

    def _on_exact_loaded(self, frame_id: int, image: QImage) -> None:
        s = self.session
        if s is not None and not self.view.grid_mode and s.current is not None and s.current.frame_id == frame_id:
            self.view.sharpen(image)

    def _on_frame_failed(self, frame_id: int, message: str) -> None:
        s = self.session
        if s is not None and s.current is not None and s.current.frame_id == frame_id:
            self.view.show_candidate({**self._current_info, "loading": f"This frame cannot be shown: {message}"}, None)
        self.review_did_fail.emit(message)

    def _on_thumb_loaded(self, frame_id: int, image: QImage) -> None:
        self.view.set_filmstrip_thumbnail(frame_id, image)
        self.view.grid.set_thumbnail(frame_id, image)

    # -- actions ------------------------------------------------------------------------------------
    def _after_decision(self, ids: list[int], said: str, labels: list[str], marks: dict[int, str] | None = None) -> None:
        if ids:
            self._batches.append(marks or {})  # a grid page's marks, shown again when it is taken back
            self.pace.record(labels)
            self.decisions_made += len(ids)
            self.decision_did_record.emit(self.decisions_made)
            self.view.show_feedback(said + (" · Z takes it back" if len(ids) == 1 else f" · Z takes all {len(ids)} back"))
        self.show_current()

    def _named(self) -> str:
        c = self.session.current if self.session is not None else None
        return "" if c is None else f"t={short_time(c.timestamp_s)}"

    def _sent(self, send: Callable[[], list[int]]) -> list[int] | None:
        """Run a decision; when the database cannot take it, say so, keep it on screen and
        send it again every few seconds (None: not sent)."""
        try:
            return send()
        except StoreUnavailable as exc:
            self.view.show_feedback(f"Not sent yet: {exc.reason}. The decision stays on screen and is sent as soon "
                                    "as the database is back; keys wait until then")
            self._resend.start()
            return None
        except StoreError as exc:
            self.view.show_feedback(f"Not recorded: {exc}")
            return None

    def send_pending(self) -> None:
        """Try again to send the decision that waits for the database."""
        if self.session is None or self.session.pending is None:
            self._resend.stop()
            return
        waiting = self.session.pending
        labels = [waiting.labels[m.frame_id].value for m in waiting.members]
        try:
            ids = self.session.send_pending()
        except StoreUnavailable:
            return  # still out of reach: the message on screen stands, the timer tries again
        except StoreError as exc:
            self._resend.stop()
            self.view.show_feedback(f"Not recorded: {exc}")
            return
        self._resend.stop()
        self._after_decision(ids, "The database is back: the decision that waited is recorded", labels[: len(ids)])

    def decide(self, label: str) -> None:
        if self.session is not None:
            name = self._named()
            ids = self._sent(lambda: self.session.decide(label))
            if ids is not None:
                self._after_decision(ids, f"{PAST[label]} the frame at {name}", [label] * len(ids))

    def decide_event(self, label: str) -> None:
        if self.session is not None:
            c = self.session.current
            ids = self._sent(lambda: self.session.decide_event(label, on_screen=self._film))
            if ids is None:
                return
            size = len(ids)
            event = "" if c is None else f" of event {c.event + 1}"
            self._after_decision(ids, f"{PAST[label]} {size} frame{'s' if size != 1 else ''}{event} (those on the "
                                      "filmstrip you did not pass over)", [label] * size)

    def decide_grid(self, labels: dict) -> None:
        if self.session is not None and labels:
            ids = self._sent(lambda: self.session.decide_frames({int(k): v for k, v in labels.items()}))
            if ids is None:
                return
            by_frame = {int(k): v for k, v in labels.items()}  # (``ids`` are the decisions' own ids)
            accepted, unsure = (sum(1 for v in by_frame.values() if v == k) for k in ("accept", "unsure"))
            self._after_decision(ids, f"Page decided: {accepted} accepted, {unsure} unsure, {len(ids) - accepted - unsure} rejected",
                                 list(by_frame.values())[: len(ids)], marks=by_frame)

    def undo(self) -> None:
        if self.session is not None:
            try:
                undone = self.session.undo()
            except StoreError as exc:
                self.view.show_feedback(f"Not taken back: {exc}")
                return
            if undone:
                self.pace.take_back()
                self.decisions_made = max(0, self.decisions_made - undone)
                self.view.show_feedback(f"Took back {undone} decision{'s' if undone != 1 else ''}: "
                                        f"{'the frame is' if undone == 1 else 'the frames are'} in the queue again")
                self._marks = self._batches.pop() if self._batches else {}  # in grid mode the page shows them again
                self.show_current()
                self.decision_did_undo.emit(undone)
            else:
                self.view.show_feedback("Nothing to take back in this session")

    def move(self, step: int) -> None:
        if self.session is not None:
            self.session.move(step)
            self.show_current()

    def set_grid(self, on: bool) -> None:
        self.view.set_grid_mode(on)
        self.show_current()
