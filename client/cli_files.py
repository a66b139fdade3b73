"""Photos and files in ``python -m client chat``: the ``/photo`` and ``/file`` commands,
saving what arrives, progress on long transfers, and refusals in English and French.

``/photo PATH [caption]`` sends an image through the photo pipeline (upright, no EXIF or
GPS, resized, with a thumbnail) and refuses anything else; ``/file PATH [caption]`` sends
any file (an image still goes through the pipeline: its metadata never leaves the
device). A path with spaces is quoted: ``/file "compte rendu.pdf" pour info``.
"""

from __future__ import annotations

import shlex
import unicodedata
from collections.abc import Callable
from pathlib import Path

from client.api import ApiError
from client.attachments import AttachmentDescriptor, AttachmentError
from client.events import SecurityError
from client.files import safe_file_name
from client.session import RelaisClient

Output = Callable[[str], None]
FILE_COMMANDS = ("/photo", "/file")
PROGRESS_MIN_BYTES = 256 * 1024  # below this a transfer is too quick to watch


def human_size(size: int) -> str:
    if size < 1000:
        return f"{size} B"
    if size < 1_000_000:
        return f"{size / 1000:.0f} kB"
    return f"{size / 1_000_000:.1f} MB"


def printable(text: str) -> str:
    """Someone else's text, safe to print on a terminal: no escape sequences, no
    control or invisible characters (line breaks become spaces)."""
    return "".join(" " if unicodedata.category(c) in {"Cc", "Cf", "Zl", "Zp"} else c for c in text)


def describe(attachment: AttachmentDescriptor, caption: str) -> str:
    """One line for a received attachment: kind, safe name, size, caption."""
    kind = "photo" if attachment.thumbnail is not None else "file"
    facts = [safe_file_name(attachment)]
    if attachment.width and attachment.height:
        facts.append(f"{attachment.width}x{attachment.height}")
    facts.append(human_size(attachment.size))
    line = f"[{kind}: {', '.join(facts)}]"
    return f"{line} {printable(caption)}" if caption else line


class ProgressLines:
    """A transfer's progress as lines at 25, 50 and 75 %, for transfers long enough to
    wait for; the caller prints the line that says it is done."""

    def __init__(self, label: str, out: Output) -> None:
        self.label = label
        self.out = out
        self.quarters = 0

    def __call__(self, done: int, total: int) -> None:
        if total < PROGRESS_MIN_BYTES:
            return
        quarters = min(3, done * 4 // total)
        if quarters > self.quarters:
            self.quarters = quarters
            self.out(f"  {self.label}: {quarters * 25} %")


def refusal(out: Output, *, what: tuple[str, str], error: BaseException) -> None:
    """Print why something failed, in English then French, with its stable code."""
    english_what, french_what = what
    if isinstance(error, AttachmentError):
        code, english, french = error.code, error.message, error.message_fr
    elif isinstance(error, ApiError):
        code, english, french = error.code, str(error), "refusé par le serveur."
    elif isinstance(error, SecurityError):
        code, english = "security", str(error)
        french = "refusé : la vérification de sécurité a échoué (voir les alertes)."
    elif isinstance(error, ConnectionError | TimeoutError):
        code, english = "connection_lost", "the server did not confirm the message; try again."
        french = "le serveur n'a pas confirmé le message ; réessayez."
    elif isinstance(error, OSError):
        code, english = "unreadable_file", f"{error.strerror or error}: {error.filename or ''}"
        french = "fichier illisible ou introuvable."
    else:
        code, english, french = "bad_command", str(error), "commande mal formée."
    out(f"!! {english_what} ({code}): {english}")
    out(f"   {french_what} : {french}")


def parse_arguments(command: str, rest: str) -> tuple[Path, str | None]:
    """``PATH [caption]`` (shell quoting for paths with spaces); ValueError if no path."""
    words = shlex.split(rest)
    if not words:
        raise ValueError(f"usage: {command} PATH [caption]")
    return Path(words[0]).expanduser(), " ".join(words[1:]) or None


async def send_command(client: RelaisClient, room_id: int, line: str, *, out: Output) -> None:
    """Run ``/photo PATH [caption]`` or ``/file PATH [caption]``."""
    command, _, rest = line.partition(" ")
    photo = command == "/photo"
    what = (
        ("photo not sent", "photo non envoyée")
        if photo
        else ("file not sent", "fichier non envoyé")
    )
    try:
        path, caption = parse_arguments(command, rest)
        progress = ProgressLines(f"sending {path.name}", out)
        if photo:
            sent = await client.send_photo(room_id, path, text=caption, progress=progress)
        else:
            sent = await client.send_file(room_id, path, text=caption, progress=progress)
    except (AttachmentError, ApiError, SecurityError, OSError, ValueError) as error:
        refusal(out, what=what, error=error)
        return
    out(f"  (sent {describe(sent.descriptor, '')}, #{sent.seq})")


async def save_received(
    client: RelaisClient, attachment: AttachmentDescriptor, folder: Path, *, out: Output
) -> Path | None:
    """Download, check and decrypt a received attachment into ``folder``; the file, or
    None after printing why not (nothing is left behind then)."""
    progress = ProgressLines(f"receiving {safe_file_name(attachment)}", out)
    try:
        saved = await client.save_attachment(attachment, folder, progress=progress)
    except (AttachmentError, OSError) as error:
        refusal(out, what=("not saved", "non enregistré"), error=error)
        return None
    out(f"  saved: {saved} ({human_size(attachment.size)}, SHA-256 checked)")
    return saved
