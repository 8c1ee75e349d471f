"""``triage`` commands for a team on one project: ``team init`` (a PostgreSQL project, its
shared folder, its roles), ``team add``, ``team list``, and ``store copy`` (a project from
one store into the other)."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from triage_app.cli.common import project_location
from triage_app.core.store import Workspace
from triage_app.core.store.copy import copy_project
from triage_app.core.store.db import is_store_url
from triage_app.core.store.roles import add_member, members, setup_roles


def _team_url(text: str) -> str:
    if not is_store_url(text):
        raise argparse.ArgumentTypeError(f"{text}: a team store is a PostgreSQL URL (postgresql://host/database)")
    return text


def cmd_team_init(args: argparse.Namespace) -> int:
    with Workspace(args.url, shared=args.shared, create=True) as ws:
        names = setup_roles(ws.db)
        for user in args.analyst or []:
            add_member(ws.db, user, "analyst")
        for user in args.supervisor or []:
            add_member(ws.db, user, "supervisor")
        print(f"team project at {ws.location}, schema version {ws.db.version}, shared folder {ws.root}")
        print(f"roles: {names['analyst']} (decide and read), {names['supervisor']} (also policies, resolutions, "
              "retraining, ingest and scoring)")
        for role, users in members(ws.db).items():
            print(f"  {role}s: {', '.join(users) if users else '(none yet: triage team add URL USER --role ' + role + ')'}")
    return 0


def cmd_team_add(args: argparse.Namespace) -> int:
    with Workspace(args.url, create=False) as ws:
        group = add_member(ws.db, args.user, args.role)
    print(f"{args.user} is now in {group}; the server's own authentication (or ALTER ROLE ... PASSWORD, kept "
          "in each analyst's ~/.pgpass) lets them in")
    return 0


def cmd_team_list(args: argparse.Namespace) -> int:
    with Workspace(args.url, create=False) as ws:
        for role, users in members(ws.db).items():
            print(f"{role}s: {', '.join(users) if users else '(none)'}")
    return 0


def cmd_store_copy(args: argparse.Namespace) -> int:
    if is_store_url(args.dst) and args.shared is None:
        print("error: copying into a team store needs --shared FOLDER (the folder every analyst's machine reaches)",
              file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    result = copy_project(args.src, args.dst, shared=args.shared)
    took = time.perf_counter() - t0
    print(f"copied {result.rows} rows of {len(result.tables)} tables and {result.files} files in {took:.1f} s")
    for table, n in result.tables.items():
        if n:
            print(f"  {table}: {n}")
    print(f"checked: every table's rows and content hash match (sha256 {result.digest[:16]})")
    return 0


def add_parsers(sub: Any) -> None:
    team = sub.add_parser("team", help="a team on one project: a PostgreSQL store, its shared folder and its roles")
    tsub = team.add_subparsers(dest="team_command", required=True)
    ti = tsub.add_parser("init", help="set a project up in an empty PostgreSQL database (or bring its roles up to date)")
    ti.add_argument("url", type=_team_url, help="postgresql://[user@]host[:port]/database (no password: ~/.pgpass)")
    ti.add_argument("--shared", required=False, help="the folder every analyst's machine reaches (embedding cache, "
                    "kept stream frames, the project's settings); needed the first time")
    ti.add_argument("--analyst", action="append", metavar="USER", help="a database user who decides and reads")
    ti.add_argument("--supervisor", action="append", metavar="USER", help="a database user who also sets policies, "
                    "resolves disagreements and retrains")
    ti.set_defaults(func=cmd_team_init)
    ta = tsub.add_parser("add", help="give a database user a role in the project")
    ta.add_argument("url", type=_team_url)
    ta.add_argument("user")
    ta.add_argument("--role", choices=["analyst", "supervisor"], default="analyst")
    ta.set_defaults(func=cmd_team_add)
    tl = tsub.add_parser("list", help="who has which role")
    tl.add_argument("url", type=_team_url)
    tl.set_defaults(func=cmd_team_list)

    store = sub.add_parser("store", help="move a project between a folder (SQLite) and a team store (PostgreSQL)")
    ssub = store.add_subparsers(dest="store_command", required=True)
    sc = ssub.add_parser("copy", help="copy every record and file of a project into a new folder or an empty database, "
                         "checked by counts and a content hash")
    sc.add_argument("src", type=project_location, help="the project: a folder or a URL")
    sc.add_argument("dst", type=project_location, help="a new folder, or an empty PostgreSQL database's URL")
    sc.add_argument("--shared", help="the team's shared folder, when DST is a URL")
    sc.set_defaults(func=cmd_store_copy)
