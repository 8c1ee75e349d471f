"""A workspace: one open project with its settings and model cards, and one store per kind
of record. Everything above the store layer reaches the project through it. A project is a
folder (its database ``project.db`` inside) or, for a team, a PostgreSQL URL plus the shared
folder the project recorded (embedding cache, kept stream frames, the project's settings).

    with Workspace(root) as ws:
        ws.frames.frame_rows()      # sources, frames, messages
        ws.scores.score_table()     # model versions, scores, runs, out-of-fold scores
        ws.decisions.current()      # decisions, the label check's doubts
        ws.policies.save(...)       # policies
        ws.heads.latest()           # head models
        ws.embeddings.pooled(...)   # the embedding cache beside the database
        ws.audit.sampled(key)       # audit samples of what the policy drops
        ws.rankings.rank_scores()   # active review: the learnt ranking, the blind audit of the unreviewed
        ws.leases.take(...)         # the frames on each analyst's screen
        ws.annotations.of_frames()  # boxes drawn in CVAT or Label Studio and brought back
"""

from __future__ import annotations

import os
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import numpy as np

from triage_app.core.model.cards import ModelCard, load_cards
from triage_app.core.model.errors import NoProjectError, StoreError
from triage_app.core.model.policy import Policy
from triage_app.core.model.settings import Settings, TargetSettings, load_settings, save_section
from triage_app.core.model.targets import Target, apply_target, resolve_target
from triage_app.core.store.annotations import AnnotationStore
from triage_app.core.store.audit import AuditStore
from triage_app.core.store.db import Database, is_store_url
from triage_app.core.store.decisions import DecisionStore
from triage_app.core.store.embeddings import EMBED_DIR, EmbeddingStore
from triage_app.core.store.frames import DB_NAME, FrameStore
from triage_app.core.store.heads import HeadStore
from triage_app.core.store.lock import WriterLock
from triage_app.core.store.notes import NoteStore
from triage_app.core.store.policies import PolicyStore
from triage_app.core.store.rankings import RankingStore
from triage_app.core.store.scores import ScoreStore
from triage_app.core.store.team import LeaseStore, MetaStore

#: The key of a team store's shared folder in ``project_meta``.
SHARED_KEY = "shared_folder"


class Workspace:
    """An open project. ``settings`` default to the project's (user file, project file,
    environment); ``cards`` to the settings' models folder plus members deployed into the
    project, looking for the project's target (``settings.target``)."""

    def __init__(self, root: str | Path, settings: Settings | None = None, cards: dict[str, ModelCard] | None = None,
                 create: bool = True, shared: str | Path | None = None,
                 overrides: dict[str, Any] | None = None) -> None:
        self.team = is_store_url(root)
        if self.team:  # a team store: the database first, then the folder it shares
            self.db = Database(str(root), create=create and shared is not None)
            self.location = self.db.where
            try:
                self.meta = MetaStore(self.db)
                self.root = self._shared_folder(shared, create)
            except BaseException:
                self.db.close()
                raise
        else:
            self.root = Path(root)
            self.location = str(self.root)
            self._make_folder(create)
            self._check_folder(create)
        try:
            self.settings = settings if settings is not None else load_settings(self.root, overrides=overrides)
            self.target = self._target()
            self.cards = apply_target(cards if cards is not None else load_cards(self.settings.models_dir, self.root),
                                      self.target)
        except BaseException:
            if self.team:
                self.db.close()
            raise
        if not self.team:
            self.db = Database(self.root / DB_NAME)
            self.meta = MetaStore(self.db)
        else:  # on a team store, decisions are signed by the database user (what its grants check)
            self.settings.review.reviewer = self.db.user or self.settings.review.reviewer
        self.frames = FrameStore(self.db, self.root)
        self.scores = ScoreStore(self.db)
        self.decisions = DecisionStore(self.db)
        self.policies = PolicyStore(self.db)
        self.heads = HeadStore(self.db)
        self.embeddings = EmbeddingStore(self.db, self.root)
        self.audit = AuditStore(self.db)
        self.rankings = RankingStore(self.db)
        self.leases = LeaseStore(self.db)
        self.annotations = AnnotationStore(self.db)
        self.notes = NoteStore(self.db)
        self._writer_lock = WriterLock(self.root, self.db.engine if self.team else None)

    def _make_folder(self, create: bool) -> None:
        if self.root.exists() and not self.root.is_dir():
            raise NoProjectError(f"{self.root}: exists and is not a folder, cannot hold a project")
        if not self.root.exists():
            if not create:
                raise NoProjectError(f"{self.root}: no such project folder")
            try:
                self.root.mkdir(parents=True)
            except OSError as exc:
                raise StoreError(f"{self.root}: cannot create project folder ({exc.strerror})") from exc

    def _shared_folder(self, given: str | Path | None, create: bool) -> Path:
        """The folder a team store shares (embedding cache, kept stream frames, settings): the
        one given (recorded when the project has none yet), else ``TRIAGE_SHARED_FOLDER`` (the
        same share mounted elsewhere on this machine), else the one the project recorded."""
        recorded = self.meta.get(SHARED_KEY)
        env = os.environ.get("TRIAGE_SHARED_FOLDER")
        chosen = given if given is not None else env if env else recorded
        if chosen is None:
            raise NoProjectError(f"{self.location}: this team store has no shared folder yet; set the project up with "
                                 "`triage team init URL --shared FOLDER` (a folder every analyst's machine reaches)")
        self.root = Path(chosen)
        self._make_folder(create=True if recorded is None else create)
        if not os.access(self.root, os.W_OK):
            raise StoreError(f"{self.root}: the team's shared folder is read-only; the embedding cache is written there")
        if recorded is None:
            self.meta.set(SHARED_KEY, str(self.root.resolve()))
        return self.root

    @property
    def role(self) -> str | None:
        """What this user may do in the project: 'supervisor' (always, on a folder), 'analyst',
        or None (a team store's user with no role in it)."""
        if not self.team:
            return "supervisor"
        if not hasattr(self, "_role"):
            from triage_app.core.store.roles import role_of

            self._role = role_of(self.db)
        return self._role

    def writing(self, what: str, wait_s: float = 0.0) -> AbstractContextManager[None]:
        """Hold the project's writer lock (frames, scores, embeddings) for ``what``: one
        writer per project across processes; raises ``ProjectBusy`` naming who holds it."""
        return self._writer_lock.hold(what, wait_s)

    def _check_folder(self, create: bool) -> None:
        """Refuse, with the reason, a folder that cannot be a working project: one that is no
        project where a command only reads one, one whose database is gone while its other
        files remain (it would silently become a new, empty project), a read-only one."""
        db = self.root / DB_NAME
        if db.is_dir():
            raise StoreError(f"{db}: is a folder, not a project database")
        if not db.exists():
            remnants = [n for n, pattern in ((EMBED_DIR, "*.f16"), ("streams", "source-*"))
                        if (self.root / n).is_dir() and next((self.root / n).glob(pattern), None) is not None]
            if remnants:
                raise StoreError(f"{self.root}: the project's database {DB_NAME} is missing while its "
                                 f"{', '.join(remnants)} folder remains: restore {DB_NAME} (or its backup, "
                                 f"{DB_NAME}.v*.bak) rather than starting an empty project over it")
            if not create:
                raise NoProjectError(f"{self.root}: no triage project here (no {DB_NAME}); `triage ingest` or the window "
                                 "makes one")
        if not os.access(self.root, os.W_OK) or (db.exists() and not os.access(db, os.W_OK)):
            raise StoreError(f"{self.root}: the project folder is read-only (SQLite needs to write its journal beside "
                             f"{DB_NAME}); copy the project somewhere writable, or ask for write permission")

    @staticmethod
    def exists(root: str | Path) -> bool:
        """Whether a project is there (a team store is taken to be: opening it says if not)."""
        return is_store_url(root) or (Path(root) / DB_NAME).is_file()

    @property
    def target_chosen(self) -> bool:
        """Whether the project's own settings name what it looks for (a new project does not)."""
        import tomllib

        try:
            return "target" in tomllib.loads((self.root / "settings.toml").read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError):
            return False

    def _target(self) -> Target:
        t = self.settings.target
        return resolve_target(t.name, t.imagenet_classes, t.prompts, t.background_prompts, t.size_m)

    def set_target(self, name: str, imagenet_classes: list[str] | None = None, prompts: list[str] | None = None,
                   background_prompts: list[str] | None = None, size_m: float | None = None) -> Target:
        """Look for another target from now on: written into the project's ``settings.toml``
        (its other settings and comments kept), the cards look for it, and the members whose
        scores depend on it score the frames again when scoring next runs."""
        target = resolve_target(name, imagenet_classes, prompts, background_prompts, size_m)  # checked first
        path = self.root / "settings.toml"
        wanted = TargetSettings(name=name, imagenet_classes=list(imagenet_classes or []), prompts=list(prompts or []),
                                background_prompts=list(background_prompts or []), size_m=size_m)
        save_section("target", {k: v for k, v in wanted.model_dump().items() if v}, path=path)
        self.settings.target = wanted
        self.reload_cards()
        return target

    def reload_cards(self) -> None:
        """Read the cards again (a member was deployed into the project or retired, or the
        project's target changed)."""
        self.target = self._target()
        self.cards = apply_target(load_cards(self.settings.models_dir, self.root), self.target)

    def policy(self) -> Policy:
        """The policy in force."""
        return self.policies.active(self.cards, self.settings.scoring.rule)

    def candidates(self, policy: Policy | None = None, members: list[str] | None = None
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(frame ids, fused scores, candidate mask) under a policy (default: the one in
        force), from stored scores only."""
        policy = policy if policy is not None else self.policy()
        ids, names, mat, _ = self.scores.score_table(members)
        fused, cand = policy.fuse(mat, names)
        return ids, fused, cand

    def change_marks(self) -> tuple[tuple[object, ...], ...]:
        """Cheap marks of everything derived numbers depend on (scores written, decisions
        made or undone, embeddings cached, frames added or flagged): equal marks, nothing
        changed."""
        sets = ("group_concat(id || ':' || rows_committed)" if self.db.dialect == "sqlite"
                else "string_agg(id || ':' || rows_committed, ',' ORDER BY id)")
        with self.db.read() as conn:
            return tuple(tuple(conn.exec_driver_sql(sql).one()) for sql in (
                "SELECT count(*), max(scored_at) FROM scores",
                "SELECT count(*), max(id), count(undone_at) FROM decisions",
                f"SELECT {sets} FROM embedding_sets",
                "SELECT count(*), count(quality_flag), max(source_id) FROM frames",
            ))

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Workspace:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
