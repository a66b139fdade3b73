"""A practitioner's devices from the terminal: link a new device (it shows a code, an
existing device approves it), recover after losing every device (the recovery code),
list and revoke devices."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
from typing import Any

from client import registration
from client.api import ApiError
from client.cli_errors import CliError
from client.cli_session import Options, connected, new_client
from client.session import RelaisClient


async def link(options: Options, args: argparse.Namespace) -> int:
    """On a new device: log in, show the link code, wait for an existing device."""
    client = new_client(options)
    try:
        if client.registered:
            raise CliError(
                "ce coffre de clés a déjà une identité : rien à lier",
                "this key store already has an identity: nothing to link",
            )
        login = await _login(client, options)
        pending = await registration.start_link(
            client, token=login["token"], device=login["device"], national_id=options.me
        )
        options.out("sur un appareil déjà lié, tapez / on a device already linked, type:")
        options.out(f"    python -m client approve {pending.code.short_code} --as {options.me}")
        options.out(f"(code QR / QR payload: {pending.code.qr_payload})")
        options.out("… en attente de l'approbation / waiting for approval (10 min)")
        try:
            await registration.finish_link(client, pending)
        except TimeoutError:
            raise CliError("code expiré : recommencez", "the code expired: start again") from None
        await client.connect()
        rooms = [r for r in client.rooms.values() if not r.left]
        options.out(
            f"appareil {client.device_id} lié ; {len(rooms)} salon(s) / device "
            f"{client.device_id} linked; {len(rooms)} room(s)"
        )
    finally:
        await client.close()
    return 0


async def approve(options: Options, args: argparse.Namespace) -> int:
    """On an existing device: check a new device's code and send it the identity."""
    client = new_client(options)
    try:
        await connected(client, options)

        async def confirm(device: int, name: str) -> bool:
            options.out(f"lier l'appareil {device} « {name} » ? / link device {device} '{name}'?")
            if args.yes:
                return True
            answer = await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
            return answer.strip().lower() in ("o", "oui", "y", "yes")

        device = await registration.approve_link(client, args.code, confirm=confirm)
        options.out(f"appareil {device} lié / device {device} linked")
    finally:
        await client.close()
    return 0


async def recover(options: Options, args: argparse.Namespace) -> int:
    """Every device lost: a new device gets the identity back with the recovery code."""
    client = new_client(options)
    try:
        if client.registered:
            raise CliError(
                "ce coffre de clés a déjà une identité", "this key store already has an identity"
            )
        code = args.code or await asyncio.get_running_loop().run_in_executor(
            None, getpass.getpass, "code de récupération / recovery code: "
        )
        login = await _login(client, options)
        restored = await registration.recover(
            client,
            token=login["token"],
            device=login["device"],
            national_id=options.me,
            code_text=code,
        )
        await client.connect()
        options.out(
            f"identité restaurée sur l'appareil {client.device_id} ; {restored} clé(s) "
            f"d'historique / identity restored on device {client.device_id}; {restored} "
            "history key(s)"
        )
    finally:
        await client.close()
    return 0


async def devices(options: Options, args: argparse.Namespace) -> int:
    client = new_client(options)
    try:
        await connected(client, options)
        if args.revoke is not None:
            await client.api.call("DELETE", f"devices/{args.revoke}", json={"reason": "lost"})
            options.out(f"appareil {args.revoke} révoqué / device {args.revoke} revoked")
        listing = await client.api.call("GET", "devices")
        for item in listing["devices"]:
            state = "révoqué/revoked" if item["revoked"] else "actif/active"
            current = " (cet appareil / this device)" if item["current"] else ""
            options.out(f"  {item['device']}  {item['name']}  {state}{current}")
    finally:
        await client.close()
    return 0


async def _login(client: RelaisClient, options: Options) -> dict[str, Any]:
    try:
        login = await client.api.dev_login(options.me, "terminal")
    except ApiError as error:
        if error.status == 404:
            raise CliError(
                f"{options.me} n'est pas un professionnel connu",
                f"{options.me} is not a known practitioner",
            ) from None
        raise
    return login
