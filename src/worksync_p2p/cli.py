"""The command line: parse arguments, call the library, print, return an ExitCode.

The shell stays thin: every subcommand is one handler that calls into the
library and prints with :func:`emit_table` / :func:`emit_json`. To add one:

1. a block in :func:`build_parser`::

       command = _add_command(commands, "list", "list the work items")
       add_workspace_option(command)
       command.set_defaults(handler=_cmd_list)

2. a handler ``_cmd_list(args: argparse.Namespace) -> ExitCode``.

Handlers do not print errors: they raise our own exceptions (:class:`CliError`
for a chosen exit code, ``WorkspaceError`` and friends from the library) and
:func:`main` turns each into one line on stderr, ``{"error": ...}`` on stdout
under ``--json``, and the exit code from :data:`_ERROR_CODES`. Anything else is
a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from enum import IntEnum
from pathlib import Path
from typing import NoReturn, TextIO

from worksync_p2p import __version__, commands
from worksync_p2p.adapters.sqlite_store import StoreError
from worksync_p2p.core.codec import ItemError
from worksync_p2p.daemonlock import AlreadyRunningError
from worksync_p2p.identity import KeyFileError
from worksync_p2p.invite import InviteError
from worksync_p2p.workspace import (
    DEFAULT_ROOT,
    InitResult,
    InvalidWorkspaceFileError,
    WorkspaceError,
    WorkspaceNotFoundError,
    init,
)

PROG = "worksync-p2p"


class ExitCode(IntEnum):
    """Process exit codes; scripts may rely on them (listed in ``--help``)."""

    OK = 0
    ERROR = 1  # a runtime failure: I/O error, network failure, ...
    USAGE = 2  # the command line is wrong
    NOT_FOUND = 3  # no workspace there, or no such item
    CONFLICT = 4  # the item has unresolved conflicts
    ALREADY_RUNNING = 4  # another daemon holds the workspace (alias of CONFLICT)
    BAD_INPUT = 5  # a file we read is invalid or unsafe: config, key file, item
    INTERRUPTED = 130  # Ctrl-C (128 + SIGINT)


_EXIT_CODES_EPILOG = """\
exit codes:
  0    success
  1    runtime failure (I/O, network)
  2    usage error (bad command line)
  3    not found (no workspace in DIR, no such item)
  4    conflict (item has conflicts) or daemon already running
  5    bad input (invalid config.toml, key file, or item)
  130  interrupted
"""


class CliError(Exception):
    """An error a handler reports to the user with a specific exit code."""

    def __init__(self, message: str, code: ExitCode = ExitCode.ERROR) -> None:
        super().__init__(message)
        self.code = code


class _UsageError(Exception):
    pass


# Checked in order, so subclasses come before their base classes.
_ERROR_CODES: tuple[tuple[type[Exception], ExitCode], ...] = (
    (WorkspaceNotFoundError, ExitCode.NOT_FOUND),
    (AlreadyRunningError, ExitCode.ALREADY_RUNNING),
    (ItemError, ExitCode.BAD_INPUT),
    (InviteError, ExitCode.BAD_INPUT),
    (StoreError, ExitCode.ERROR),
    (InvalidWorkspaceFileError, ExitCode.BAD_INPUT),
    (KeyFileError, ExitCode.BAD_INPUT),
    (WorkspaceError, ExitCode.ERROR),
    (OSError, ExitCode.ERROR),
)
_HANDLED_ERRORS = tuple(error_type for error_type, _ in _ERROR_CODES)


class _ArgumentParser(argparse.ArgumentParser):
    """Usage errors become one line (``worksync-p2p: ...``) and exit code 2."""

    def error(self, message: str) -> NoReturn:
        raise _UsageError(f"{message} (see `{self.prog} --help`)")


# ---------------------------------------------------------------- output helpers


def emit_json(obj: object, file: TextIO | None = None) -> None:
    """Print ``obj`` as one JSON document (Paths become strings)."""
    out = sys.stdout if file is None else file
    out.write(json.dumps(obj, indent=2, ensure_ascii=False, default=_json_default) + "\n")


def emit_table(rows: list[dict[str, str]], columns: list[str], file: TextIO | None = None) -> None:
    """Print ``rows`` under an upper-case header, columns aligned, one row per line."""
    out = sys.stdout if file is None else file
    cells = [[column.upper() for column in columns]]
    cells += [[_one_line(row.get(column, "")) for column in columns] for row in rows]
    widths = [max(len(line[index]) for line in cells) for index in range(len(columns))]
    for line in cells:
        padded = (cell.ljust(width) for cell, width in zip(line, widths, strict=True))
        out.write("  ".join(padded).rstrip() + "\n")


def _one_line(text: str) -> str:
    return " ".join(text.splitlines()).replace("\t", " ")


def _json_default(obj: object) -> str:
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"cannot encode {type(obj).__name__} as JSON")


def _report_error(message: str, code: ExitCode, json_output: bool) -> ExitCode:
    message = _one_line(message)
    sys.stderr.write(f"{PROG}: {message}\n")
    if json_output:
        emit_json({"error": message})
    return code


# ---------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    parser = _ArgumentParser(
        prog=PROG,
        description="Keep a folder of markdown work items in sync between peers, serverless.",
        epilog=_EXIT_CODES_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    _add_global_options(parser, in_subcommand=False)
    commands = parser.add_subparsers(title="commands", dest="command", metavar="COMMAND")
    commands.required = True

    command = _add_command(commands, "init", "create a workspace (harmless if it exists)")
    add_dir_argument(command)
    command.set_defaults(handler=_cmd_init)

    command = _add_command(commands, "up", "start the peer: follow the folder and keep it in sync")
    add_dir_argument(command, created=True)
    command.add_argument("--host", help="address to listen on (default from config: 0.0.0.0)")
    command.add_argument("--port", type=int, help="port to listen on; 0 picks a free one")
    command.add_argument(
        "--peer",
        action="append",
        default=[],
        metavar="HOST:PORT",
        help="dial this peer (repeatable; also `peers` in config.toml)",
    )
    command.add_argument(
        "--local-only", action="store_true", help="follow the folder without syncing with peers"
    )
    command.add_argument(
        "--no-mdns", action="store_true", help="do not find peers by mDNS (static peers only)"
    )
    command.add_argument(
        "--interface",
        action="append",
        default=[],
        metavar="IFACE",
        help="run mDNS only on this interface or address (repeatable; default: all)",
    )
    command.set_defaults(handler=_cmd_up)

    command = _add_command(commands, "peers", "list known peers: address, last seen, connected")
    add_workspace_option(command)
    command.set_defaults(handler=_cmd_peers)

    command = _add_command(
        commands, "revoke", "remove a peer: it can no longer connect to anyone who syncs with us"
    )
    add_workspace_option(command)
    command.add_argument("peer", metavar="PEER", help="the peer id, as `peers` lists it")
    command.set_defaults(handler=_cmd_revoke)

    command = _add_command(commands, "invite", "print a code that lets another machine join")
    add_workspace_option(command)
    command.set_defaults(handler=_cmd_invite)

    command = _add_command(commands, "join", "create a workspace that belongs to an invitation")
    command.add_argument("code", metavar="CODE", help="the code `worksync-p2p invite` printed")
    add_dir_argument(command)
    command.set_defaults(handler=_cmd_join)

    command = _add_command(
        commands, "events", "print item changes of the running peer live, as JSON lines"
    )
    add_workspace_option(command)
    command.set_defaults(handler=_cmd_events)

    command = _add_command(commands, "list", "list the work items (id, type, status, summary)")
    add_workspace_option(command)
    command.set_defaults(handler=_cmd_list)

    command = _add_command(commands, "show", "print one work item")
    add_workspace_option(command)
    command.add_argument("item", metavar="ID", help="item id, or its path inside the workspace")
    command.set_defaults(handler=_cmd_show)

    command = _add_command(commands, "new", "create a work item with a collision-free id")
    add_workspace_option(command)
    command.add_argument("type", metavar="TYPE", help="item type, e.g. task, plan, proposal")
    command.add_argument("summary", metavar="SUMMARY", help="one-line summary")
    command.set_defaults(handler=_cmd_new)

    command = _add_command(
        commands,
        "conflicts",
        "show what the merge rules decided (exit status 4 when there are any)",
    )
    add_workspace_option(command)
    command.set_defaults(handler=_cmd_conflicts)

    return parser


def _add_global_options(parser: argparse.ArgumentParser, *, in_subcommand: bool) -> None:
    # Accepted before and after the subcommand. In the subcommand, SUPPRESS keeps
    # an absent option from overwriting what the main parser already set.
    def default(value: object) -> object:
        return argparse.SUPPRESS if in_subcommand else value

    parser.add_argument(
        "--json",
        action="store_true",
        default=default(False),
        help="machine output: one JSON document on stdout (errors too)",
    )
    parser.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=default(0),
        help="more log output on stderr (-vv for debug)",
    )


def _add_command(
    commands: argparse._SubParsersAction[_ArgumentParser], name: str, summary: str
) -> argparse.ArgumentParser:
    parser = commands.add_parser(
        name,
        help=summary,
        description=summary,
        epilog=_EXIT_CODES_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_global_options(parser, in_subcommand=True)
    return parser


def add_dir_argument(parser: argparse.ArgumentParser, *, created: bool = False) -> None:
    """The optional ``DIR`` positional of init, up and join."""
    note = ", created if missing" if created else ""
    parser.add_argument(
        "dir",
        nargs="?",
        type=Path,
        default=DEFAULT_ROOT,
        metavar="DIR",
        help=f"folder of work items{note} (default: ./{DEFAULT_ROOT})",
    )


def add_workspace_option(parser: argparse.ArgumentParser) -> None:
    """``-w/--workspace DIR`` for subcommands that use an existing workspace."""
    parser.add_argument(
        "-w",
        "--workspace",
        type=Path,
        default=DEFAULT_ROOT,
        metavar="DIR",
        help=f"folder of work items (default: ./{DEFAULT_ROOT})",
    )


# ---------------------------------------------------------------- entry point


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    try:
        args = build_parser().parse_args(arguments)
    except _UsageError as error:
        return _report_error(str(error), ExitCode.USAGE, "--json" in arguments)
    except SystemExit as exit_request:  # --help and --version
        return exit_request.code if isinstance(exit_request.code, int) else ExitCode.OK
    _configure_logging(args.verbose)
    try:
        code: ExitCode = args.handler(args)
    except CliError as error:
        return _report_error(str(error), error.code, args.json)
    except _HANDLED_ERRORS as error:
        return _report_error(str(error), _code_for(error), args.json)
    except KeyboardInterrupt:
        return _report_error("interrupted", ExitCode.INTERRUPTED, args.json)
    return int(code)


def _code_for(error: Exception) -> ExitCode:
    for error_type, code in _ERROR_CODES:
        if isinstance(error, error_type):
            return code
    raise AssertionError(f"no exit code for {type(error).__name__}")  # pragma: no cover


def _configure_logging(verbosity: int) -> None:
    level = {0: logging.WARNING, 1: logging.INFO}.get(verbosity, logging.DEBUG)
    logging.basicConfig(level=level, format=f"{PROG}: %(levelname)s %(name)s: %(message)s")


# ---------------------------------------------------------------- handlers


def _cmd_init(args: argparse.Namespace) -> ExitCode:
    result = init(args.dir)
    if args.json:
        emit_json(_init_summary(result))
        return ExitCode.OK
    root = result.workspace.root
    if result.created:
        print(f"Created workspace {root}")
    else:
        print(f"Workspace already exists at {root} (nothing overwritten)")
    print(f"  peer id:  {result.identity.peer_id}")
    if result.created_paths:
        label = "created:" if result.created else "restored:"
        names = ", ".join(str(path.relative_to(root)) for path in result.created_paths)
        print(f"  {label:<9} {names}")
    return ExitCode.OK


def _init_summary(result: InitResult) -> dict[str, object]:
    return {
        "created": result.created,
        "path": result.workspace.root,
        "state_dir": result.workspace.state_dir,
        "peer_id": result.identity.peer_id,
        "created_paths": list(result.created_paths),
    }


def _cmd_up(args: argparse.Namespace) -> ExitCode:
    net = commands.net_options(
        args.dir,
        args.host,
        args.port,
        args.peer,
        local_only=args.local_only,
        mdns=not args.no_mdns,
        interfaces=args.interface,
    )
    commands.up(args.dir, json_output=args.json, net=net)
    return ExitCode.OK


def _cmd_invite(args: argparse.Namespace) -> ExitCode:
    invitation = commands.invite(args.workspace)
    if args.json:
        emit_json(invitation)
    else:
        print(invitation["code"])
        sys.stderr.write(
            "This code carries the workspace secret: anyone who has it can join. "
            "Send it over a channel you trust.\n"
        )
    return ExitCode.OK


def _cmd_join(args: argparse.Namespace) -> ExitCode:
    joined = commands.join(args.code, args.dir)
    if args.json:
        emit_json(joined)
    else:
        print(f"Joined: {joined['path']} (peer id {joined['peer_id']})")
        print(f"Start it with: worksync-p2p up {joined['path']}")
    return ExitCode.OK


def _cmd_list(args: argparse.Namespace) -> ExitCode:
    listing = commands.list_items(args.workspace)
    for error in listing.errors:
        sys.stderr.write(f"{PROG}: warning: {_one_line(str(error))}\n")
    if args.json:
        emit_json(listing.as_json())
    else:
        emit_table(listing.rows, ["id", "type", "status", "summary", "path"])
    return ExitCode.OK


def _cmd_show(args: argparse.Namespace) -> ExitCode:
    shown = commands.show_item(args.workspace, args.item)
    if shown is None:
        raise CliError(f"{args.workspace}: no item {args.item!r}", ExitCode.NOT_FOUND)
    if args.json:
        emit_json(shown)
    else:
        sys.stdout.write(shown["text"])
    return ExitCode.OK


def _cmd_new(args: argparse.Namespace) -> ExitCode:
    created = commands.new_item(args.workspace, args.type, args.summary)
    if args.json:
        emit_json(created)
    else:
        print(f"{created['id']}  {created['path']}")
    return ExitCode.OK


def _cmd_conflicts(args: argparse.Namespace) -> ExitCode:
    found = commands.list_conflicts(args.workspace)
    if args.json:
        emit_json({"conflicts": found, "count": len(found)})
    elif found:
        emit_table(
            commands.conflict_rows(found), ["item", "path", "kind", "field", "kept", "others"]
        )
    else:
        print("No conflicts.")
    return ExitCode.CONFLICT if found else ExitCode.OK


def _cmd_events(args: argparse.Namespace) -> ExitCode:
    commands.print_events(args.workspace)
    return ExitCode.OK


def _cmd_peers(args: argparse.Namespace) -> ExitCode:
    known = commands.peers(args.workspace)
    if args.json:
        emit_json({"peers": known})
        return ExitCode.OK
    rows = [
        {
            "peer": p["peer"],
            "address": p["address"],
            "last seen": _ago(p["last_seen_ms"]),
            "connected": "yes" if p["connected"] else "no",
            "revoked": "REVOKED" if p["revoked"] else "",
        }
        for p in known
    ]
    emit_table(rows, ["peer", "address", "last seen", "connected", "revoked"])
    return ExitCode.OK


def _ago(ms: int) -> str:
    if not ms:
        return "never"
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _cmd_revoke(args: argparse.Namespace) -> ExitCode:
    result = commands.revoke(args.workspace, args.peer)
    if args.json:
        emit_json(result)
    elif result["new"]:
        print(f"Revoked {args.peer}: peers that learn of it refuse its connections.")
    else:
        print(f"{args.peer} was already revoked.")
    return ExitCode.OK
