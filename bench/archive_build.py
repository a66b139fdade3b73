"""Benchmark: build one MSSanté archive of a busy room (docs/archive.md).

    .venv/bin/python -m bench.archive_build [--messages 1000] [--photos 20] [--runs 3]

A room of 1,000 messages, 20 of them carrying a photo: each photo is a 12-megapixel
phone JPEG (``bench.attachments.twelve_megapixel_jpeg``) put through the SDK's photo
pipeline (``client.attachments.images.process_image``: 2048 px, re-encoded), as members'
apps send them. The archive is then built as the archiver does
(``archive.mail.build_archive_mail``: transcript PDF with the photos inline, CDA R2 N1,
IHE_XDM.ZIP, the mail) and serialised to bytes, ``--runs`` times, in a fresh process
whose peak resident memory is read from the kernel (``VmHWM``) before and after.
No database or server is needed.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path


def prepare_photos(folder: Path, count: int) -> float:
    """``count`` 12 MP JPEGs through the SDK pipeline into ``folder``; mean source size."""
    from bench.attachments import twelve_megapixel_jpeg
    from client.attachments.images import process_image

    sizes = []
    for index in range(count):
        source = twelve_megapixel_jpeg()
        sizes.append(len(source))
        processed = process_image(source, declared_mime="image/jpeg")
        (folder / f"photo-{index:02d}.jpg").write_bytes(processed.data)
    return statistics.mean(sizes)


def room(folder: Path, messages: int) -> object:
    from archive.content import (
        ArchiveContent,
        ArchivedAuthor,
        ArchivedFile,
        ArchivedMessage,
        ArchiveOrganisation,
    )
    from documents.ins import IdentityStatus, InsOid, PatientIdentity, Sex

    photos = sorted(folder.glob("photo-*.jpg"))
    every = max(1, messages // max(1, len(photos)))
    nurse = ArchivedAuthor("810003456786", "Claire MARTIN", "60", "MARTIN", "Claire")
    doctor = ArchivedAuthor("810001987659", "Dr Paul DURAND", "10", "DURAND", "Paul")
    start = datetime(2026, 12, 1, 7, 0, tzinfo=UTC)
    items = []
    next_photo = 0
    for seq in range(1, messages + 1):
        files: tuple[ArchivedFile, ...] = ()
        if seq % every == 0 and next_photo < len(photos):
            path = photos[next_photo]
            files = (ArchivedFile(path.name, "image/jpeg", path.read_bytes()),)
            next_photo += 1
        author = nurse if seq % 3 else doctor
        text = (
            f"Passage {seq} : pansement refait, plaie propre, pas de signe d'infection, "
            "douleur 2/10, l'œdème diminue. Prochain passage demain matin."
        )
        items.append(ArchivedMessage(seq, start + timedelta(minutes=seq), author, text, files))
    patient = PatientIdentity(
        status=IdentityStatus.QUAL,
        birth_family_name="PAT-TROIS",
        birth_given_names=("DOMINIQUE", "MARIE-LOUISE"),
        birth_date=date(1979, 3, 28),
        sex=Sex.F,
        birthplace="51215",
        matricule="279035121518989",
        oid=InsOid.TEST,
    )
    return ArchiveContent(
        organisation=ArchiveOrganisation(
            "Centre de santé des Pentes", "1750000123", "archives@pentes.mssante.fr"
        ),
        room_id=42,
        room_kind="care_team",
        room_title="Mme PAT-TROIS — plaie talon",
        first_seq=1,
        last_seq=messages,
        reason="daily",
        cut_at=start + timedelta(days=1),
        messages=tuple(items),
        patient=patient,
        recipients=("dpi@chb.mssante.fr",),
    )


def peak_rss_mib() -> float:
    """This process's peak resident memory (``VmHWM``). Unlike ``ru_maxrss``, which
    Linux keeps across ``exec`` from the parent, it starts afresh in a new program."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status (Linux only)")


def child(folder: Path, messages: int, runs: int) -> None:
    """Build the archive ``runs`` times in this process; print JSON."""
    from archive.content import ArchiveContent
    from archive.mail import build_archive_mail

    content = room(folder, messages)
    assert isinstance(content, ArchiveContent)
    baseline = peak_rss_mib()
    seconds, cpu, sizes = [], [], []
    zip_size = pdf_size = 0
    for _ in range(runs):
        wall, process = time.perf_counter(), time.process_time()
        mail = build_archive_mail(content)
        data = mail.as_bytes()
        seconds.append(time.perf_counter() - wall)
        cpu.append(time.process_time() - process)
        sizes.append(len(data))
        zip_size, pdf_size = len(mail.xdm_zip or b""), len(mail.transcript.pdf)
        del mail, data  # one archive at a time, as the archiver builds them
    peak = peak_rss_mib()
    print(
        json.dumps(
            {
                "seconds": seconds,
                "cpu_seconds": cpu,
                "mail_bytes": sizes[-1],
                "zip_bytes": zip_size,
                "pdf_bytes": pdf_size,
                "input_photo_bytes": sum(len(f.data) for f in content.files),
                "baseline_rss_mib": baseline,
                "peak_rss_mib": peak,
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--photos", type=int, default=20)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.child is not None:
        child(options.child, options.messages, options.runs)
        return
    with tempfile.TemporaryDirectory(prefix="relais-archive-bench-") as work:
        folder = Path(work)
        began = time.perf_counter()
        source_size = prepare_photos(folder, options.photos)
        print(
            f"{options.photos} photos: 12 MP JPEG sources of {source_size / 1e6:.1f} MB on "
            f"average, through the SDK pipeline in {time.perf_counter() - began:.1f} s"
        )
        command = [sys.executable, "-m", "bench.archive_build", "--child", str(folder)]
        command += ["--messages", str(options.messages), "--runs", str(options.runs)]
        output = subprocess.run(command, capture_output=True, check=True, text=True).stdout
    result = json.loads(output)
    median = statistics.median(result["seconds"])
    print(
        f"archive of {options.messages} messages and {options.photos} photos "
        f"({result['input_photo_bytes'] / 1e6:.1f} MB of photos): "
        f"mail {result['mail_bytes'] / 1e6:.1f} MB, "
        f"IHE_XDM.zip {result['zip_bytes'] / 1e6:.1f} MB, "
        f"PDF {result['pdf_bytes'] / 1e6:.1f} MB"
    )
    print(
        "build time per archive: "
        + ", ".join(f"{s:.2f} s" for s in result["seconds"])
        + f" (median {median:.2f} s, CPU "
        + ", ".join(f"{s:.2f} s" for s in result["cpu_seconds"])
        + f"), so {60 / median:.1f} archives per minute on one core"
    )
    print(
        f"archiver process memory: {result['baseline_rss_mib']:.0f} MiB with the room loaded, "
        f"peak {result['peak_rss_mib']:.0f} MiB while building "
        f"(+{result['peak_rss_mib'] - result['baseline_rss_mib']:.0f} MiB)"
    )


if __name__ == "__main__":
    main()
