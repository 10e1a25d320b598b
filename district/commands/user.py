"""`loa-district user`: the console's staff accounts.

    loa-district user add NAME --db district.sqlite        # asks for the password twice; role operator
    loa-district user add NAME --role officer --db ...     # may also send actual alerts
    loa-district user add NAME --db ... --password-stdin   # scripts: the password on stdin
    loa-district user add NAME --role commune --commune hoa-vang/hoa-bac --db ...   # a commune broadcaster
    loa-district user role NAME officer|operator --db ...
    loa-district user role NAME commune --commune hoa-vang/hoa-bac [--commune ...] --db ...
    loa-district user passwd NAME --db ...
    loa-district user list --db ...
    loa-district user disable NAME --db ...   (and `enable`)

Roles: `officer` may send test, exercise and actual alerts; `operator` test and exercise only. Both may cancel
any alert and work for every commune. `commune` runs the programme of the communes given with `--commune` (one
or more) and sees their stations; it sends and cancels no district alert. A role change applies to open sessions at their next request. Passwords are stored as scrypt hashes
(district.console.accounts). A disabled account cannot log in and cannot send; its open sessions end at its
next request.
"""

from __future__ import annotations

import getpass
import sys
from datetime import datetime

from district.console.accounts import check_name, check_new_password, hash_password
from district.console.store import DEFAULT_ROLE, ROLES, ConsoleStore, check_communes
from firmware.cli_support import UsageError


def register(subparsers) -> None:
    p = subparsers.add_parser("user", help="console staff accounts: add, role, passwd, list, disable, enable")
    sub = p.add_subparsers(dest="user_command", metavar="ACTION", required=True)
    for name, helptext in (("add", "create an account (asks for the password)"),
                           ("passwd", "set a new password"),
                           ("disable", "forbid an account to log in"),
                           ("enable", "allow a disabled account again")):
        q = sub.add_parser(name, help=helptext)
        q.add_argument("name", metavar="NAME")
        q.add_argument("--db", required=True, metavar="FILE", help="district SQLite database")
        if name in ("add", "passwd"):
            q.add_argument("--password-stdin", action="store_true", help="read the password from stdin (scripts)")
        if name == "add":
            q.add_argument("--role", choices=ROLES, default=DEFAULT_ROLE,
                           help=f"officer: may send actual alerts; operator: test and exercise only (default "
                                f"{DEFAULT_ROLE}); commune: the programme of its --commune(s), no alerts")
            _commune_arg(q)
        q.set_defaults(func=run)
    q = sub.add_parser("role", help="set an account's role: officer (may send actual alerts) or operator")
    q.add_argument("name", metavar="NAME")
    q.add_argument("role", choices=ROLES, metavar="ROLE", help=" or ".join(ROLES))
    _commune_arg(q)
    q.add_argument("--db", required=True, metavar="FILE", help="district SQLite database")
    q.set_defaults(func=run)
    q = sub.add_parser("list", help="list accounts")
    q.add_argument("--db", required=True, metavar="FILE", help="district SQLite database")
    q.set_defaults(func=run)


def _commune_arg(q) -> None:
    q.add_argument("--commune", action="append", default=[], metavar="DISTRICT/COMMUNE",
                   help="with --role commune: a commune this account runs (repeat for several)")


def _password(from_stdin: bool) -> str:
    if from_stdin:
        pw = sys.stdin.readline().rstrip("\n")
    else:
        if not sys.stdin.isatty():
            raise UsageError("no terminal to ask the password on: use --password-stdin")
        pw = getpass.getpass("password: ")
        if getpass.getpass("again: ") != pw:
            raise UsageError("the two passwords differ; nothing changed")
    problem = check_new_password(pw)
    if problem:
        raise UsageError(problem)
    return pw


def run(args) -> int:
    action = args.user_command
    if action != "list":
        problem = check_name(args.name)
        if problem:
            raise UsageError(problem)
    communes = tuple(getattr(args, "commune", ()))
    if action in ("add", "role"):
        problem = check_communes(args.role, communes)
        if problem:
            raise UsageError(problem)
    store = ConsoleStore(args.db)
    try:
        if action == "list":
            users = store.users()
            if not users:
                print("no accounts")
            for u in users:
                last = datetime.fromtimestamp(u.last_login).isoformat(timespec="minutes") if u.last_login else "never"
                where = f"  communes {', '.join(u.communes)}" if u.communes else ""
                print(f"{u.name:24s} {u.role:8s} {'disabled' if u.disabled else 'enabled ':8s} last login {last}"
                      f"{where}")
            return 0
        if action == "add":
            if args.name in {u.name for u in store.users()}:
                print(f"loa-district user: {args.name} exists (use `user passwd`)", file=sys.stderr)
                return 1
            if not store.add_user(args.name, hash_password(_password(args.password_stdin)), args.role, communes):
                print(f"loa-district user: {args.name} exists", file=sys.stderr)
                return 1
            print(f"account {args.name} created, role {args.role}{_for(communes)}", file=sys.stderr)
            return 0
        if action == "role":
            if not store.set_role(args.name, args.role, communes):
                print(f"loa-district user: no account {args.name}", file=sys.stderr)
                return 1
            print(f"account {args.name}: role {args.role}{_for(communes)}", file=sys.stderr)
            return 0
        if action == "passwd":
            pw = _password(args.password_stdin)
            ok = store.set_password(args.name, hash_password(pw))
        else:
            ok = store.set_disabled(args.name, action == "disable")
        if not ok:
            print(f"loa-district user: no account {args.name}", file=sys.stderr)
            return 1
        print(f"account {args.name}: {action} done", file=sys.stderr)
        return 0
    finally:
        store.close()


def _for(communes: tuple[str, ...]) -> str:
    return f" for {', '.join(communes)}" if communes else ""
