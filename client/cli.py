"""``python -m client``: end-to-end encrypted chat from a terminal, and the devices of a
practitioner (development login; see README).

    python -m client chat --as 810003456786 --with 810002765435
    python -m client link --as 810003456786        # on a new device: shows a code
    python -m client approve CODE --as 810003456786  # on an existing device
    python -m client recover --as 810003456786      # every device lost: the recovery code
    python -m client devices --as 810003456786      # list (and --revoke N)
    python -m client teleexpertise --as 810003456786  # ask for or give a téléexpertise
    python -m client archive run|status|cut          # the organisation's archiver

Each terminal is a device with its own keys, kept in an encrypted store (passphrase from
``RELAIS_PASSPHRASE`` or asked). The first device of a practitioner makes their identity
key and prints a recovery code to keep on paper. Errors are one line, in French and
English.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from client import cli_archive, cli_teleexpertise
from client.cli_account import approve, devices, link, recover
from client.cli_chat import chat
from client.cli_errors import EXIT_FAILURE, CliError, explain
from client.cli_session import Options


def _out(line: str) -> None:
    print(line, flush=True)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m client", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)

    def command(name: str, text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=text)
        sub.add_argument("--as", dest="me", required=True, help="your national id (8 + RPPS)")
        sub.add_argument(
            "--server", default=os.environ.get("RELAIS_SERVER", "http://127.0.0.1:8000")
        )
        sub.add_argument(
            "--store", type=Path, help="key store file (default: ~/.relais/<id>.store)"
        )
        return sub

    talk = command("chat", "chat end to end with another practitioner")
    talk.add_argument("--with", dest="peer", required=True, help="their national id")
    talk.add_argument(
        "--save-to",
        type=Path,
        help="folder for received photos and files (default: ~/.relais/received/<id>)",
    )
    command("link", "link this new device to your identity (shows a code)")
    approving = command("approve", "approve a new device of yours with the code it shows")
    approving.add_argument("code", help="the QR payload or the short code")
    approving.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    restoring = command("recover", "every device lost: restore your identity with the code")
    restoring.add_argument("--code", help="the recovery code (asked if not given)")
    listing = command("devices", "your devices (and revoke one)")
    listing.add_argument("--revoke", type=int, help="revoke this device number (lost phone)")
    cli_teleexpertise.add_arguments(command("teleexpertise", "ask for or give a téléexpertise"))
    cli_archive.add_parser(commands)
    return parser


RUNNERS: dict[str, Callable[[Options, argparse.Namespace], Coroutine[Any, Any, int]]] = {
    "chat": chat,
    "link": link,
    "approve": approve,
    "recover": recover,
    "devices": devices,
    "teleexpertise": cli_teleexpertise.teleexpertise,
}


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "archive":
        return cli_archive.main(args, _out)
    home = Path(os.environ.get("RELAIS_HOME", "~/.relais")).expanduser()
    store_path = (args.store or home / f"{args.me}.store").expanduser()
    try:
        passphrase = os.environ.get("RELAIS_PASSPHRASE") or getpass.getpass(
            "phrase de passe du coffre de clés / key store passphrase: "
        )
    except (EOFError, KeyboardInterrupt):
        return EXIT_FAILURE
    options = Options(
        server=args.server.rstrip("/"),
        me=args.me,
        store_path=store_path,
        passphrase=passphrase,
        home=home,
        out=_out,
    )
    try:
        return asyncio.run(RUNNERS[args.command](options, args))
    except KeyboardInterrupt:
        return 0
    except CliError as error:
        _out(f"!! {error}")
        return EXIT_FAILURE
    except Exception as error:  # the last line of defence: one line, never a traceback
        _out(f"!! {explain(error, server=options.server, store=str(store_path))}")
        return EXIT_FAILURE


if __name__ == "__main__":
    sys.exit(main())
