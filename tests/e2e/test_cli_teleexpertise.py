"""``python -m client teleexpertise`` in two terminals, against a real server process:
the nurse asks the GP with a wound photo, the GP asks a clarification, accepts and
answers; the report's PDF and CDA are saved on the nurse's side, her act is recorded
and exported; a step her role does not allow is refused in English and French."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from datetime import date
from pathlib import Path

import pytest

from documents.cda import check_cda
from tests.e2e.server import ROOT, ServerProcess
from tests.e2e.teleexpertise_helpers import DOCTOR, NURSE, wound_photo
from tests.e2e.terminal import Terminal
from tests.teleexpertise.samples import patient

pytestmark = pytest.mark.e2e


async def start(server: ServerProcess, home: Path, me: str, *options: str) -> Terminal:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("RELAIS_")}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "client",
        "teleexpertise",
        "--as",
        me,
        "--server",
        server.http_url,
        "--save-to",
        str(home / "received"),
        *options,
        cwd=ROOT,
        env={**clean, "RELAIS_HOME": str(home), "RELAIS_PASSPHRASE": "demo passphrase"},
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    terminal = Terminal(process)
    await terminal.wait_for("/quit leaves")
    return terminal


async def test_the_nurse_to_gp_flow_in_two_terminals(server, tmp_path):
    (tmp_path / "patient.json").write_text(json.dumps(patient().to_dict()))
    (tmp_path / "plaie.jpg").write_bytes(wound_photo())
    gp = await start(server, tmp_path / "gp", DOCTOR, "--structure", "1750000123:Cabinet Durand")
    nurse = await start(server, tmp_path / "nurse", NURSE)

    await nurse.type(
        f"/request --to {DOCTOR} --patient {tmp_path / 'patient.json'} --consent oral "
        f'--reason "Plaie du talon" --question "Faut-il changer de pansement ?" '
        f"--photo {tmp_path / 'plaie.jpg'} --within 48h"
    )
    sent = await nurse.wait_for("request sent")
    room = sent.split("#")[1].split(" ")[0]
    await gp.wait_for(f"téléexpertise #{room}: request from Claire MARTIN")
    assert "DOMINIQUE PAT-TROIS, né(e) le 28/03/1979, INS 279035121518989" in await gp.wait_for(
        "patient:"
    )
    await gp.wait_for("Consentement donné oralement par le patient")
    assert (await gp.wait_for("saved:")).strip().endswith("plaie.jpg")

    # The requérant cannot accept: refused on her device, in English and French.
    await nurse.type("/accept")
    assert "role_refused" in await nurse.wait_for("!! refused")
    assert "vous ne pouvez pas accepter" in await nurse.wait_for("refusé :")

    await gp.type("/ask Depuis quand la plaie s'aggrave-t-elle ?")
    await nurse.wait_for("question from")
    await nurse.type("/answer Depuis dix jours, sans fièvre.")
    assert "sans fièvre" in await gp.wait_for("answer from")
    await gp.type("/accept")
    await nurse.wait_for("accept → accepted")
    await gp.type("/report Pas d'infection : hydrocolloïde, contrôle à J+7.")
    await gp.wait_for("report sent")

    assert "hydrocolloïde" in await nurse.wait_for("report from")
    pdf = Path((await nurse.wait_for("saved:")).split("saved:")[1].strip())
    cda = Path((await nurse.wait_for("saved:")).split("saved:")[1].strip())
    assert check_cda(await asyncio.to_thread(cda.read_bytes)).pdf == await asyncio.to_thread(
        pdf.read_bytes
    )
    assert "act RQD recorded:" in await nurse.wait_for("act RQD")

    year = date.today().year
    export = tmp_path / "actes.csv"
    await nurse.type(f"/export {year}-01-01 {year}-12-31 {export}")
    await nurse.wait_for("acts written")
    lines = export.read_text().splitlines()
    assert len(lines) == 2
    assert lines[1].split(";")[1:5] == ["RQD", "10.00", "metropole", "oui"]
    await nurse.type(f"/fhir {tmp_path / 'demande.json'}")
    await nurse.wait_for("FHIR ServiceRequest bundle written")
    bundle = json.loads((tmp_path / "demande.json").read_text())
    assert bundle["type"] == "transaction"
    assert await nurse.quit() == 0
    assert await gp.quit() == 0


async def test_the_flow_on_the_embedded_server(embedded_server, tmp_path):
    """What ``make run`` serves (SQLite, in-process fan-out): the same steps work."""
    (tmp_path / "patient.json").write_text(json.dumps(patient().to_dict()))
    gp = await start(
        embedded_server, tmp_path / "gp", DOCTOR, "--structure", "1750000123:Cabinet Durand"
    )
    nurse = await start(embedded_server, tmp_path / "nurse", NURSE)
    await nurse.type(
        f"/request --to {DOCTOR} --patient {tmp_path / 'patient.json'} --consent oral "
        '--reason "Plaie" --question "Avis ?"'
    )
    await nurse.wait_for("request sent")
    await gp.wait_for("request from")
    await gp.type("/accept")
    await gp.wait_for("accepted #")
    await nurse.wait_for("accept → accepted")
    await gp.type("/report Poursuivre les soins.")
    await gp.wait_for("report sent")
    assert "Poursuivre les soins." in await nurse.wait_for("report from")
    assert "act RQD recorded:" in await nurse.wait_for("act RQD")
    assert await nurse.quit() == 0
    assert await gp.quit() == 0
