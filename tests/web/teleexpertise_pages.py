"""What the browser téléexpertise tests share: the screen opened, the request form filled
as a nurse types it, the screenshots, the SDK's request of the sample case, and the
shape of a CDA header."""

from __future__ import annotations

from datetime import date
from typing import Any

from channels.db import database_sync_to_async as sync_to_async
from lxml import etree
from playwright.async_api import FilePayload, Page, Route

from attachments.models import Attachment
from client.teleexpertise.sdk import SentStep, TeleexpertiseClient
from tests.e2e.teleexpertise_helpers import DOCTOR, in_hours, wound_photo
from tests.teleexpertise.samples import consent, patient
from tests.web.conftest import DESKTOP, PHONE, screenshot

QUESTION = "Plaie du talon gauche qui s'aggrave depuis dix jours : faut-il changer de pansement ?"
REASON = "Plaie qui s'aggrave"
PHOTO = "plaie-talon.jpg"


async def open_teleexpertise(page: Page) -> None:
    await page.locator("#open-teleexpertise").click()
    await page.locator("#teleexpertise").wait_for()


async def screenshots(page: Page, name: str) -> None:
    for label, size in (("phone", PHONE), ("desktop", DESKTOP)):
        await page.set_viewport_size(size)
        await screenshot(page, f"teleexpertise-{name}-{label}")
    await page.set_viewport_size(DESKTOP)


async def fill_request(page: Page) -> None:
    """The sample patient of the SDK's tests (a qualified identity), as a nurse types it."""
    await page.get_by_role("button", name="Nouvelle demande").click()
    await page.get_by_label("RPPS du requis").fill(DOCTOR)
    await page.get_by_label("Statut de l'identité").select_option("QUAL")
    await page.get_by_label("Nom de naissance").fill("PAT-TROIS")
    await page.get_by_label("Prénoms de naissance").fill("DOMINIQUE, MARIE-LOUISE")
    await page.get_by_label("Date de naissance").fill("1979-03-28")
    await page.get_by_label("Sexe").select_option("F")
    await page.get_by_label("Lieu de naissance").fill("51215")
    await page.get_by_label("Matricule INS").fill("279035121518989")
    await page.get_by_label("OID du matricule").select_option("1.2.250.1.213.1.4.10")
    await page.get_by_label("Consentement obtenu le").fill(date.today().isoformat())
    await page.get_by_label("Motif").fill(REASON)
    await page.get_by_label("Question").fill(QUESTION)
    await page.get_by_label("Photos").set_input_files(
        [FilePayload(name=PHOTO, mimeType="image/jpeg", buffer=wound_photo())]
    )


async def sdk_request(te: TeleexpertiseClient, *, photo: bool = False, **extra: Any) -> SentStep:
    """The SDK's request of the sample case to the doctor (due in 48 hours), with the
    wound photo if ``photo``."""
    return await te.request(
        requis=DOCTOR,
        patient=patient(),
        reason=REASON,
        question=QUESTION,
        consent=consent(obtained_on=date.today()),
        deadline=in_hours(48),
        files=[(wound_photo(), PHOTO)] if photo else [],
        **extra,
    )


def skeleton(cda: bytes) -> list[str]:
    """Every element's path with its attribute names: the shape of the header, without
    the values that differ from one document to the next (ids, times, the PDF)."""
    tree = etree.fromstring(cda)
    shape = []
    for element in tree.iter():
        path = etree.ElementTree(tree).getpath(element)
        shape.append(f"{path} {sorted(element.keys())}")
    return shape


def _uploads_of(national_id: str) -> int:
    return Attachment.objects.filter(uploader__national_id=national_id).count()


async def uploads_of(national_id: str) -> int:
    """The attachments the practitioner's devices have on the server."""
    count: int = await sync_to_async(_uploads_of)(national_id)
    return count


async def request_call_unavailable(page: Page, uploads: list[int], national_id: str) -> None:
    """The server answers the request's call (POST /api/v1/teleexpertise) with 503, as a
    service that is down does; ``uploads`` gets the practitioner's uploads counted at
    that moment."""

    async def unavailable(route: Route) -> None:
        if route.request.method != "POST":
            await route.continue_()
            return
        uploads.append(await uploads_of(national_id))
        await route.fulfill(
            status=503,
            json={
                "error": {
                    "code": "unavailable",
                    "message": "The service is unavailable.",
                    "message_fr": "Le service est indisponible.",
                }
            },
        )

    await page.route(lambda url: url.endswith("/api/v1/teleexpertise"), unavailable)
