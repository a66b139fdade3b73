"""The real packaging (``archive.packaging``) behind the service, against a real Relais
server: the photo is downloaded and decrypted in memory and lands in IHE_XDM.ZIP with
the bytes the members see; the patient comes from the room's encrypted profile; the
mail carries the MSSanté headers. The mail side is the fake delivery; the real one is in
test_service_e2e.py."""

from __future__ import annotations

import email
import hashlib
import io
import zipfile
from email.message import EmailMessage
from email.policy import default
from pathlib import Path

from archive.mail import XDM_ATTACHMENT
from archive.outbox import ArchiveState
from archive.packaging import Packaging
from archive.service import ArchiveService, ServiceSettings
from client.teleexpertise.profile import RoomProfileContent
from tests.archive.fakes import FakeDelivery
from tests.archive.relais import (  # noqa: F401 (fixtures)
    DOCTOR,
    NURSE,
    ORGANISATION,
    Clock,
    archiver_and_outbox,
    registered_archiver,
    relais,
    requested_teleexpertise,
    server_env,
    write_token_file,
)
from tests.e2e.sdk import new_client, next_message
from tests.e2e.teleexpertise_helpers import next_event, wound_photo
from tests.teleexpertise.samples import patient

SENDER = "archiveur@cds-pentes.mssante.fr"
RECORDS = "dossiers@cds-pentes.mssante.fr"


def attachments(mail: bytes) -> dict[str, bytes]:
    message = email.message_from_bytes(mail, _class=EmailMessage, policy=default)
    assert isinstance(message, EmailMessage)
    found = {}
    for part in message.iter_attachments():
        payload = part.get_payload(decode=True)
        assert isinstance(payload, bytes)
        found[part.get_filename() or ""] = payload
    return found


async def test_the_archive_carries_the_photo_the_members_saw(relais, tmp_path: Path):  # noqa: F811 (fixture)
    client, outbox = await archiver_and_outbox(relais, tmp_path)
    delivery, lines = FakeDelivery(), list[str]()
    service = ArchiveService(
        client=client,
        outbox=outbox,
        packager=Packaging(client=client, sender=SENDER, recipients=(RECORDS,)),
        delivery=delivery,
        settings=ServiceSettings(sender=SENDER, recipients=(RECORDS,)),
        out=lines.append,
    )
    await client.connect()
    nurse = await new_client(relais.http_url, tmp_path, NURSE, "nurse")
    doctor = await new_client(relais.http_url, tmp_path, DOCTOR, "doctor")
    room = await nurse.create_room(kind="care_team", members=[DOCTOR], archiver=ORGANISATION)
    profile = RoomProfileContent(title="Mme PAT-TROIS — plaie talon", patient=patient())
    await nurse.set_room_profile(room, profile.to_dict())
    await nurse.send_text(room, "Pansement refait, plaie propre.")
    sent = await nurse.send_photo(room, wound_photo(), name="plaie-talon.jpg")
    assert (await next_message(doctor)).text == "Pansement refait, plaie propre."
    seen = await next_message(doctor)
    assert seen.attachment is not None
    saved = await doctor.save_attachment(seen.attachment, tmp_path / "doctor")
    photo_hash = hashlib.sha256(saved.read_bytes()).hexdigest()

    await service.turn()
    assert outbox.request_cut(room)
    await service.turn()
    [mail] = delivery.sent
    [archive] = outbox.archives()
    assert (archive.state, archive.first_seq, archive.last_seq) == (ArchiveState.SENT, 1, sent.seq)
    message = email.message_from_bytes(mail, policy=default)
    assert message["Message-ID"] == archive.message_id
    assert message["X-MSS-NIL"]
    assert message["X-MSS-INS"] == "O"  # the profile's patient has a qualified INS
    assert message["Disposition-Notification-To"]
    files = attachments(mail)
    with zipfile.ZipFile(io.BytesIO(files[XDM_ATTACHMENT])) as archive_zip:
        names = archive_zip.namelist()
        assert "IHE_XDM/SUBSET01/METADATA.XML" in names
        hashes = {hashlib.sha256(archive_zip.read(n)).hexdigest() for n in names}
    assert photo_hash in hashes
    # Nothing of the conversation in the service's lines.
    assert not any("Pansement" in line or "PAT-TROIS" in line for line in lines)
    for each in (nurse, doctor, client):
        await each.close()


async def test_a_teleexpertise_is_cut_on_its_close_and_carries_the_report(relais, tmp_path: Path):  # noqa: F811 (fixture)
    client, outbox = await archiver_and_outbox(relais, tmp_path)
    delivery = FakeDelivery()
    service = ArchiveService(
        client=client,
        outbox=outbox,
        packager=Packaging(client=client, sender=SENDER, recipients=(RECORDS,)),
        delivery=delivery,
        settings=ServiceSettings(sender=SENDER, recipients=(RECORDS,)),
        out=list[str]().append,
    )
    await client.connect()
    nurse, nurse_te, doctor, doctor_te, room = await requested_teleexpertise(relais, tmp_path)
    await doctor_te.accept(room)
    await next_event(nurse_te)
    reported = await doctor_te.report(room, "Hydrocolloïde, contrôle à J+7.")
    assert reported.documents is not None
    await next_event(nurse_te)
    await service.turn()
    assert delivery.sent == []  # answered is not final: nothing cut yet
    await nurse_te.close(room)
    await service.turn()
    [mail] = delivery.sent
    [archive] = outbox.archives()
    assert (archive.reason, archive.first_seq, archive.last_seq) == ("teleexpertise_final", 1, 4)
    message = email.message_from_bytes(mail, policy=default)
    assert "85208-7" in str(message["X-MSS-CODECDA"])
    with zipfile.ZipFile(io.BytesIO(attachments(mail)[XDM_ATTACHMENT])) as archive_zip:
        contents = [archive_zip.read(n) for n in archive_zip.namelist()]
    assert reported.documents.cda in contents  # the compte rendu, as the requis made it
    assert any(b"85208-7" in c for c in contents)
    for each in (nurse, doctor, client):
        await each.close()
