"""Downloading the Annuaire Santé extracts: one ZIP archive per extract, from a URL the
operator configures (``RELAIS_DIRECTORY_PERSONNE_URL``, ``RELAIS_DIRECTORY_MSSANTE_URL``).

The archive's text file (``PS_LibreAcces_Personne_activite_<time>.txt`` inside
``PS_LibreAcces_<time>.zip``, ``Extraction_Correspondance_MSSante_<time>.txt``) carries the
extract's generation time in its name; ``update_directory`` imports a file only when that
name differs from the last one imported.
"""

from __future__ import annotations

import contextlib
import ipaddress
import re
import shutil
import zipfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import requests

# The text file of each extract, inside its archive.
PERSONNE_MEMBER = re.compile(r"PS_LibreAcces_Personne_activite_\d{8,14}\.txt")
MSSANTE_MEMBER = re.compile(r"Extraction_Correspondance_MSSante_\d{8,14}\.txt")

MAX_ARCHIVE_BYTES = 2 * 1024**3  # the largest extract is a few hundred MiB
MAX_MEMBER_BYTES = 8 * 1024**3
CHUNK_BYTES = 1024 * 1024


class DownloadError(Exception):
    """The extract could not be fetched or is not what was expected (one line)."""


@dataclass(frozen=True)
class Extract:
    url: str
    member: re.Pattern[str]
    label: str


def check_url(url: str) -> None:
    """https only, except on loopback (a test server)."""
    parts = urlsplit(url)
    if parts.scheme == "https":
        return
    host = parts.hostname or ""
    loopback = host == "localhost"
    with contextlib.suppress(ValueError):
        loopback = loopback or ipaddress.ip_address(host).is_loopback
    if parts.scheme != "http" or not loopback:
        raise DownloadError(f"{url}: the extract must be downloaded over https")


def download(url: str, destination: Path, *, ca_file: str, timeout: float) -> Path:
    """Stream ``url`` into ``destination`` (a ``.part`` file renamed when complete)."""
    check_url(url)
    partial = destination.with_suffix(destination.suffix + ".part")
    verify: bool | str = ca_file or True
    try:
        with requests.get(url, stream=True, timeout=timeout, verify=verify) as response:
            if response.status_code != 200:
                raise DownloadError(f"{url}: HTTP {response.status_code}")
            received = 0
            with partial.open("wb") as output:
                for chunk in response.iter_content(CHUNK_BYTES):
                    received += len(chunk)
                    if received > MAX_ARCHIVE_BYTES:
                        raise DownloadError(f"{url}: larger than {MAX_ARCHIVE_BYTES} bytes")
                    output.write(chunk)
    except requests.RequestException as error:
        partial.unlink(missing_ok=True)
        raise DownloadError(f"{url}: {type(error).__name__}: {error}") from None
    except DownloadError:
        partial.unlink(missing_ok=True)
        raise
    partial.replace(destination)
    return destination


def extract_member(archive: Path, pattern: re.Pattern[str], folder: Path) -> Path:
    """Unpack the one file of ``archive`` whose base name matches ``pattern``."""
    try:
        with zipfile.ZipFile(archive) as bundle:
            members = [
                info
                for info in bundle.infolist()
                if pattern.fullmatch(Path(info.filename).name) and not info.is_dir()
            ]
            if len(members) != 1:
                names = ", ".join(Path(i.filename).name for i in bundle.infolist()) or "nothing"
                raise DownloadError(
                    f"{archive.name}: expected one file like {pattern.pattern}, found {names}"
                )
            member = members[0]
            if member.file_size > MAX_MEMBER_BYTES:
                raise DownloadError(f"{member.filename}: larger than {MAX_MEMBER_BYTES} bytes")
            target = folder / Path(member.filename).name
            with bundle.open(member) as source, target.open("wb") as output:
                shutil.copyfileobj(source, output, CHUNK_BYTES)
            return target
    except zipfile.BadZipFile:
        raise DownloadError(f"{archive.name}: not a ZIP archive") from None
