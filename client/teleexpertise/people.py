"""The professionals of a téléexpertise, as the directory describes them: who asks, who
may be asked (médecins, chirurgiens-dentistes, sages-femmes: TRE_G15 10, 40, 50), and
the search for a requis by profession, specialty and place."""

from __future__ import annotations

from typing import Any

from client.api import ApiError, RestApi
from client.teleexpertise.contents import Professional
from client.teleexpertise.errors import TeleexpertiseError
from teleexpertise.workflow import REQUIS_PROFESSIONS


def server_refusal(error: ApiError) -> TeleexpertiseError:
    """A server refusal as the SDK's error, with the server's English and French."""
    return TeleexpertiseError(
        error.code, error.message, error.message_fr or "refusé par le serveur."
    )


def not_eligible(what: str) -> TeleexpertiseError:
    return TeleexpertiseError(
        "requis_not_eligible",
        f"Only a médecin, a sage-femme or a chirurgien-dentiste can be requis (not {what}).",
        f"Seul un médecin, une sage-femme ou un chirurgien-dentiste peut être requis (pas {what}).",
    )


class Professionals:
    """Directory lookups through the REST API, cached for the session."""

    def __init__(self, api: RestApi) -> None:
        self.api = api
        self._cards: dict[str, Professional] = {}

    async def entry(self, national_id: str) -> dict[str, Any]:
        """The directory's record of a practitioner (``GET directory/practitioners/…``)."""
        try:
            found: dict[str, Any] = await self.api.call(
                "GET", f"directory/practitioners/{national_id}"
            )
        except ApiError as error:
            raise server_refusal(error) from None
        return found

    async def professional(self, national_id: str) -> Professional:
        """A professional as the directory describes them (cached)."""
        if national_id not in self._cards:
            entry = await self.entry(national_id)
            self._cards[national_id] = Professional(
                national_id=national_id,
                family_name=str(entry["last_name"]).upper(),
                given_name=str(entry["first_name"]),
                profession_code=str(entry["profession_code"]),
                profession_label=str(entry.get("profession_label") or ""),
                specialty_code=str(entry.get("specialty_code") or ""),
            )
        return self._cards[national_id]

    async def requis(self, national_id: str) -> Professional:
        """A professional who may be requis; ``requis_not_eligible`` otherwise (checked
        here before anything is sent; the server checks again)."""
        card = await self.professional(national_id)
        if card.profession_code not in REQUIS_PROFESSIONS:
            raise not_eligible(card.profession_label or card.profession_code)
        return card

    async def find_requis(
        self,
        *,
        name: str = "",
        profession: str = "10",
        specialty: str | None = None,
        postcode: str | None = None,
        town: str | None = None,
    ) -> list[dict[str, Any]]:
        """Directory search (by name, profession, specialty and place) among those who
        may be requis."""
        if profession not in REQUIS_PROFESSIONS:
            raise not_eligible(profession)
        params = {"q": name, "profession": profession}
        for key, value in (("specialty", specialty), ("postcode", postcode), ("town", town)):
            if value:
                params[key] = value
        answer = await self.api.call("GET", "directory/practitioners", params=params)
        return list(answer["results"])
