"""``update_directory``: download the extracts over HTTP, unpack, import once."""

from __future__ import annotations

import threading
import zipfile
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from directory.models import Practitioner

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def extract_server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A loopback HTTP server serving the files of a folder (as the Annuaire does)."""
    folder = tmp_path / "served"
    folder.mkdir()

    class Handler(SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(folder), **kwargs)

        def log_message(self, format, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", folder
    server.shutdown()
    server.server_close()


def zip_extract(text: Path, archive: Path) -> None:
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as bundle:
        bundle.write(text, text.name)
        bundle.writestr("PS_LibreAcces_SavoirFaire_202601050000.txt", "other file|\n")


def configure(settings, tmp_path: Path, base: str, **overrides: str) -> None:
    settings.RELAIS_DIRECTORY = {
        "PERSONNE_URL": f"{base}/PS_LibreAcces",
        "MSSANTE_URL": f"{base}/Extraction_Correspondance_MSSante",
        "CA_FILE": "",
        "DOWNLOAD_DIR": str(tmp_path / "downloads"),
        "HTTP_TIMEOUT_SECONDS": 10,
        **overrides,
    }


def update(*args: str) -> str:
    out = StringIO()
    call_command("update_directory", *args, stdout=out, stderr=StringIO())
    return out.getvalue()


def test_downloads_unpacks_and_imports_each_extract_once(
    sample, extract_server, settings, tmp_path
):
    personne, mssante = sample
    base, served = extract_server
    zip_extract(personne, served / "PS_LibreAcces")
    zip_extract(mssante, served / "Extraction_Correspondance_MSSante")
    configure(settings, tmp_path, base)

    out = update()
    assert "practitioners: 60 created" in out
    assert "mailboxes:" in out
    assert Practitioner.objects.count() == 60
    downloads = tmp_path / "downloads"
    assert sorted(p.name for p in downloads.iterdir()) == [
        "last-import.json",
        "mssante.zip",
        "personne_activite.zip",
    ]

    again = update()
    assert f"{personne.name}: imported already, skipped" in again
    assert "the directory is up to date" in again
    assert "practitioners:" not in again
    assert "practitioners: 0 created, 0 updated, 60 unchanged" in update("--force")


def test_a_failed_download_says_why_in_one_line_and_imports_nothing(
    extract_server, settings, tmp_path
):
    base, served = extract_server
    configure(settings, tmp_path, base)
    with pytest.raises(CommandError) as missing:
        update()
    message = str(missing.value)
    assert "\n" not in message
    assert message.startswith("Directory not updated: ")
    assert "HTTP 404" in message
    assert "Annuaire non mis à jour" in message

    (served / "PS_LibreAcces").write_text("<html>maintenance</html>")
    with pytest.raises(CommandError, match="not a ZIP archive"):
        update()
    assert Practitioner.objects.count() == 0
    assert not list((tmp_path / "downloads").glob("*.part"))


def test_plain_http_is_refused_except_on_loopback(settings, tmp_path):
    configure(settings, tmp_path, "http://annuaire.example", MSSANTE_URL="")
    with pytest.raises(CommandError, match="must be downloaded over https"):
        update()


def test_an_archive_without_the_expected_file_is_refused(extract_server, settings, tmp_path):
    base, served = extract_server
    with zipfile.ZipFile(served / "PS_LibreAcces", "w") as bundle:
        bundle.writestr("README.txt", "nothing here")
    configure(settings, tmp_path, base, MSSANTE_URL="")
    with pytest.raises(CommandError, match=r"expected one file like .* found README.txt"):
        update()
