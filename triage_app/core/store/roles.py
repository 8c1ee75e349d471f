"""Who may do what on a team store, enforced by PostgreSQL itself (roles, grants and row-level
security), not only by the window.

Each project database gets two group roles, ``<database>_analyst`` and
``<database>_supervisor`` (a supervisor is an analyst too):

- analysts read everything; record decisions signed with their own database user (never
  another's, never a supervisor's resolution); take back only their own decisions; lease
  frames; and keep active review's own records (the ranking learnt from the decisions, the
  blind audit's draws);
- supervisors may also set policies, resolve disagreements, retrain (head, fine-tuned
  members, the label check), ingest and score footage.

``setup_roles`` makes the roles and grants (idempotent: run it again after a migration adds a
table); ``add_member`` makes a login role (no password: the server's own authentication, or
``ALTER ROLE ... PASSWORD`` by the administrator, sets that) and puts it in a group.
"""

from __future__ import annotations

from sqlalchemy import Connection

from triage_app.core.model.errors import StoreError
from triage_app.core.store.db import Database

#: Tables an analyst writes while reviewing (besides decisions, which row security guards).
ANALYST_WRITES = ("leases", "rankings", "rank_scores", "forecasts", "past_scores", "audit_draws", "audit_frames",
                  "messages", "find_notes")
ROLES = ("analyst", "supervisor")


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def role_names(db: Database) -> dict[str, str]:
    """The project's group roles: {'analyst': ..., 'supervisor': ...}."""
    if db.dialect != "postgresql":
        raise StoreError(f"{db.where}: roles and grants are a team store's (PostgreSQL); a project folder is one "
                         "person's, guarded by the file system")
    base = str(db.url.database)
    return {r: f"{base}_{r}" for r in ROLES}


def setup_roles(db: Database) -> dict[str, str]:
    """Make the project's group roles and their grants and row-security policies."""
    names = role_names(db)
    analyst, supervisor = _q(names["analyst"]), _q(names["supervisor"])
    tables = [t for t in db.meta.tables if t != "triage_schema"]

    def fn(conn: Connection) -> None:
        for role in names.values():
            if not conn.exec_driver_sql("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).scalar():
                conn.exec_driver_sql(f"CREATE ROLE {_q(role)} NOLOGIN")
        conn.exec_driver_sql(f"GRANT {analyst} TO {supervisor}")
        database = _q(str(db.url.database))
        conn.exec_driver_sql(f"GRANT CONNECT, TEMPORARY ON DATABASE {database} TO {analyst}")
        conn.exec_driver_sql(f"GRANT USAGE ON SCHEMA public TO {analyst}")
        conn.exec_driver_sql(f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {analyst}")
        conn.exec_driver_sql(f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {analyst}")
        for t in ANALYST_WRITES:
            conn.exec_driver_sql(f"GRANT INSERT, UPDATE, DELETE ON {_q(t)} TO {analyst}")
        conn.exec_driver_sql(f"GRANT INSERT, UPDATE (undone_at) ON decisions TO {analyst}")
        for t in tables:
            if t not in ANALYST_WRITES and t != "decisions":
                conn.exec_driver_sql(f"GRANT INSERT, UPDATE, DELETE ON {_q(t)} TO {supervisor}")
        # Decisions: everyone reads all; each signs and takes back only their own; a resolution
        # of a disagreement is a supervisor's.
        conn.exec_driver_sql("ALTER TABLE decisions ENABLE ROW LEVEL SECURITY")
        for name, sql in (
            ("read", f"FOR SELECT TO {analyst} USING (true)"),
            ("decide", f"FOR INSERT TO {analyst} WITH CHECK (reviewer = current_user AND sample_kind <> 'resolve')"),
            ("resolve", f"FOR INSERT TO {supervisor} WITH CHECK (reviewer = current_user)"),
            ("undo", f"FOR UPDATE TO {analyst} USING (reviewer = current_user) WITH CHECK (reviewer = current_user)"),
        ):
            conn.exec_driver_sql(f"DROP POLICY IF EXISTS triage_{name} ON decisions")
            conn.exec_driver_sql(f"CREATE POLICY triage_{name} ON decisions {sql}")

    db.write(fn)
    return names


def add_member(db: Database, user: str, role: str) -> str:
    """Make ``user`` a login role if it is none yet and put it in the project's ``role`` group
    (out of the other); returns the group's name."""
    if role not in ROLES:
        raise StoreError(f"{role}: not a team role (analyst or supervisor)")
    names = role_names(db)

    def fn(conn: Connection) -> None:
        if not conn.exec_driver_sql("SELECT 1 FROM pg_roles WHERE rolname = %s", (user,)).scalar():
            conn.exec_driver_sql(f"CREATE ROLE {_q(user)} LOGIN")
        for r, group in names.items():
            verb = "GRANT {g} TO {u}" if r == role else "REVOKE {g} FROM {u}"
            conn.exec_driver_sql(verb.format(g=_q(group), u=_q(user)))

    db.write(fn)
    return names[role]


def members(db: Database) -> dict[str, list[str]]:
    """The login roles in each of the project's groups."""
    names = role_names(db)
    out: dict[str, list[str]] = {}
    with db.read() as conn:
        for r, group in names.items():
            out[r] = [str(x[0]) for x in conn.exec_driver_sql(
                "SELECT m.rolname FROM pg_auth_members a JOIN pg_roles g ON g.oid = a.roleid "
                "JOIN pg_roles m ON m.oid = a.member WHERE g.rolname = %s AND m.rolcanlogin ORDER BY 1", (group,))]
    return out


def role_of(db: Database) -> str | None:
    """What the connected user may do in the project: 'supervisor' (a supervisor, the
    database's owner or a superuser), 'analyst', or None (no role in it)."""
    names = role_names(db)
    with db.read() as conn:
        row = conn.exec_driver_sql(
            "SELECT r.rolsuper OR d.datdba = r.oid FROM pg_roles r, pg_database d "
            "WHERE r.rolname = current_user AND d.datname = current_database()").one()
        if row[0]:
            return "supervisor"
        for role in ("supervisor", "analyst"):
            exists = conn.exec_driver_sql("SELECT 1 FROM pg_roles WHERE rolname = %s", (names[role],)).scalar()
            if exists and conn.exec_driver_sql("SELECT pg_has_role(current_user, %s, 'MEMBER')",
                                               (names[role],)).scalar():
                return role
    return None
