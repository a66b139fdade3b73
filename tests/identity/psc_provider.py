"""Start the loopback Pro Santé Connect-shaped provider (``provider/server.mjs``).

It is panva's ``oidc-provider`` (a certified OpenID Connect implementation) run by the
machine's Node.js, configured with PSC's paths, hosts and claims. The tests start one
per module; ``python -m tests.identity.psc_provider`` starts one for trying the login
by hand (see the README).
"""

from __future__ import annotations

import argparse
import json
import select
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PROVIDER_DIR = Path(__file__).resolve().parent / "provider"
REALM = "/auth/realms/esante-wallet"
CLIENT_SECRET = "relais-test-client-secret"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def psc_userinfo(
    *,
    national_id: str,
    first_name: str,
    last_name: str,
    profession: str,
    specialty: str = "",
    activities: list[dict[str, str]] | None = None,
    origin: str = "RPPS",
) -> dict[str, Any]:
    """A userinfo document shaped like PSC's (ANS fixtures; docs/identity.md)."""
    activities = activities or [
        {
            "codeModeExercice": "L",
            "codeSecteurDactivite": "SA07",
            "identifiantTechniqueDeLaStructure": "R10000001",
            "raisonSocialeSite": f"CABINET {last_name.upper()}",
            "codePostal": "69003",
            "codeCommune": "69383",
            "ancienIdentifiantDeLaStructure": f"4{national_id[1:]}001",
            "autoriteDenregistrement": "CNOM/CNOM/CNOM",
        }
    ]
    return {
        "sub": f"f:550dc1c8-d97b-4a5c-9b6a-{national_id[-12:].rjust(12, '0')}:{national_id}",
        "SubjectNameID": national_id,
        "preferred_username": national_id,
        "given_name": first_name,
        "family_name": last_name,
        "email_verified": False,
        "SubjectRole": [f"{profession}^1.2.250.1.213.1.1.5.5"],
        "SubjectOrganization": activities[0].get("raisonSocialeSite", ""),
        "SubjectOrganizationID": activities[0].get("identifiantTechniqueDeLaStructure", ""),
        "Secteur_Activite": "SA07^1.2.250.1.71.4.2.4",
        "PSI_Locale": "1.2.250.1.213.1.3.1.1",
        "Palier_Authentification": "APPPRIP3^1.2.250.1.213.1.5.1.1.1",
        "UITVersion": "1.0",
        "Acces_Regulation_Medicale": "FAUX",
        "Mode_Acces_Raison": "",
        "otherIds": [{"identifiant": national_id, "origine": origin, "qualite": 1}],
        "SubjectRefPro": {
            "codeCivilite": "M",
            "exercices": [
                {
                    "codeProfession": profession,
                    "codeCategorieProfessionnelle": "C",
                    "codeCiviliteDexercice": "DR" if profession == "10" else "M",
                    "nomDexercice": last_name,
                    "prenomDexercice": first_name,
                    "codeTypeSavoirFaire": "S" if specialty else "",
                    "codeSavoirFaire": specialty,
                    "activities": activities,
                }
            ],
        },
    }


def account(login: str, **userinfo: Any) -> dict[str, Any]:
    return {"login": login, "userinfo": psc_userinfo(national_id=login, **userinfo)}


DEMO_ACCOUNTS = [
    account(
        "810001987659",
        first_name="Paul",
        last_name="DURAND",
        profession="10",
        specialty="SM26",
        activities=[
            {
                "codeModeExercice": "L",
                "codeSecteurDactivite": "SA07",
                "identifiantTechniqueDeLaStructure": "R10000001",
                "raisonSocialeSite": "CABINET DU DR DURAND",
                "codePostal": "69003",
                "codeCommune": "69383",
            },
            {
                "codeModeExercice": "S",
                "codeSecteurDactivite": "SA01",
                "identifiantTechniqueDeLaStructure": "F690000001",
                "raisonSocialeSite": "HOSPICES CIVILS DE LYON",
                "numeroFinessSite": "690781810",
                "codePostal": "69003",
                "codeCommune": "69383",
            },
        ],
    ),
    account("810003456786", first_name="Claire", last_name="MARTIN", profession="60"),
    account("810002765435", first_name="Karim", last_name="BENALI", profession="21"),
    # Known to PSC, unknown to the local directory (a valid RPPS check digit).
    account("819996543211", first_name="Inès", last_name="NOUVELLE", profession="50"),
    # A sandbox (EDIT) test identity: alphanumeric national id.
    account(
        "ANS20231122132732",
        first_name="KIT",
        last_name="PODO0036624",
        profession="80",
        origin="EDIT",
    ),
    # A fictive number of the specifications: wrong check digit.
    account("810000000001", first_name="FICTIF", last_name="TEST", profession="10"),
]


@dataclass
class PscProvider:
    port: int
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    clients: list[dict[str, Any]] = field(default_factory=list)

    @property
    def issuer(self) -> str:
        return f"http://127.0.0.1:{self.port}{REALM}"

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def wallet_origin(self) -> str:
        return f"http://localhost:{self.port}"

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


def relais_clients(*, relais_origins: list[str]) -> list[dict[str, Any]]:
    """Two registrations of Relais: userinfo as JSON, and userinfo as a signed JWT."""
    common = {
        "client_secret": CLIENT_SECRET,
        "redirect_uris": [f"{o}/api/v1/auth/psc/callback" for o in relais_origins],
        "post_logout_redirect_uris": [f"{o}/api/v1/auth/psc/logged-out" for o in relais_origins],
    }
    return [
        {"client_id": "relais", **common},
        {"client_id": "relais-jwt", "userinfo_signed_response_alg": "RS256", **common},
    ]


def start_provider(
    *,
    log_path: Path,
    relais_origins: list[str],
    accounts: list[dict[str, Any]] | None = None,
    port: int | None = None,
    timeout: float = 30,
    extra_clients: list[dict[str, Any]] | None = None,
) -> PscProvider:
    """Start the provider and wait for its READY line; fail clearly without Node.js.
    ``extra_clients``: more registrations (software with the client_credentials grant)."""
    node = shutil.which("node")
    if node is None:
        raise RuntimeError("Node.js is needed for the test PSC provider (apt-get install nodejs)")
    if not (PROVIDER_DIR / "node_modules" / "oidc-provider").is_dir():
        raise RuntimeError(
            f"run `npm ci` in {PROVIDER_DIR} first (make test does it) to install oidc-provider"
        )
    provider = PscProvider(port=port or free_port(), log_path=log_path)
    provider.clients = relais_clients(relais_origins=relais_origins) + (extra_clients or [])
    config = {
        "port": provider.port,
        "issuerHost": "127.0.0.1",
        "walletHost": "localhost",
        "accounts": accounts if accounts is not None else DEMO_ACCOUNTS,
        "clients": provider.clients,
    }
    config_path = log_path.with_suffix(".json")
    config_path.write_text(json.dumps(config), encoding="utf-8")
    log = log_path.open("ab")
    provider.process = subprocess.Popen(
        [node, str(PROVIDER_DIR / "server.mjs"), str(config_path.resolve())],
        cwd=PROVIDER_DIR,
        stdout=subprocess.PIPE,
        stderr=log,
    )
    log.close()
    assert provider.process.stdout is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if provider.process.poll() is not None:
            raise RuntimeError(f"the PSC provider exited: {log_path.read_text()[-2000:]}")
        ready, _, _ = select.select([provider.process.stdout], [], [], 0.5)
        if ready and provider.process.stdout.readline().startswith(b"READY"):
            return provider
    provider.stop()
    raise TimeoutError(f"the PSC provider did not start: {log_path.read_text()[-2000:]}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description="A loopback PSC-shaped provider for trying the login"
    )
    parser.add_argument("--port", type=int, default=8400)
    parser.add_argument("--relais", default="http://127.0.0.1:8000", help="Relais' origin")
    args = parser.parse_args()
    Path("var").mkdir(exist_ok=True)
    provider = start_provider(
        log_path=Path(f"var/psc-provider-{args.port}.log"),
        relais_origins=[args.relais],
        port=args.port,
    )
    print(f"Test PSC provider: issuer {provider.issuer}")
    print(f"  client id: relais   client secret: {CLIENT_SECRET}")
    print("  identities:", ", ".join(a["login"] for a in DEMO_ACCOUNTS))
    try:
        assert provider.process is not None
        provider.process.wait()
    except KeyboardInterrupt:
        provider.stop()


if __name__ == "__main__":
    main()
