"""A téléexpertise event travels in one envelope (protocol §12.2): its files as compact
descriptors (no thumbnail, empty pad), its size bounded so that the envelope stays
under the 48 KiB limit, and a step too large for it refused on the device."""

from __future__ import annotations

import os
from datetime import UTC, datetime

import pytest

from client.attachments.descriptor import (
    DESCRIPTOR_BYTES,
    AttachmentDescriptor,
    build_descriptor,
    compact,
)
from client.teleexpertise.contents import (
    MAX_ATTACHMENTS,
    MAX_CLINICAL_DATA,
    MAX_EVENT_BYTES,
    MAX_QUESTION,
    MAX_REASON,
    Report,
    Request,
    parse_event,
)
from client.teleexpertise.errors import TeleexpertiseError
from e2ee.encoding import canonical_json
from e2ee.envelopes import MAX_ENVELOPE_BYTES
from tests.attachments.test_message_size import envelope_of, worst_photo_descriptor
from tests.teleexpertise.samples import request

REPORTED_AT = datetime(2026, 3, 15, 8, 0, tzinfo=UTC)


def document(name: str, mime: str = "application/pdf") -> AttachmentDescriptor:
    return build_descriptor(
        blob=os.urandom(16).hex(),
        key=os.urandom(32),
        sha256=os.urandom(32).hex(),
        size=250_000,
        mime=mime,
        name=name,
    )


def photo(number: int) -> AttachmentDescriptor:
    descriptor, _thumbnail = worst_photo_descriptor()
    return build_descriptor(
        blob=os.urandom(16).hex(),
        key=os.urandom(32),
        sha256=os.urandom(32).hex(),
        size=descriptor.size,
        mime=descriptor.mime,
        name=f"plaie-talon-{number:02d}.jpg",
        width=descriptor.width,
        height=descriptor.height,
        thumbnail=descriptor.thumbnail,
    )


def report_of_size(size: int) -> Report:
    """A report with its two documents whose content is exactly ``size`` bytes."""
    documents = (
        document("compte-rendu-teleexpertise.pdf"),
        document("compte-rendu-teleexpertise.xml", "application/xml"),
    )
    base = Report(answer="a", reported_at=REPORTED_AT, documents=documents)
    missing = size - len(canonical_json(base.to_content())) + 1
    # "é" is two bytes: as many as fit, then one "a" if the count is odd.
    answer = "é" * (missing // 2) + "a" * (missing % 2)
    report = Report(answer=answer, reported_at=REPORTED_AT, documents=documents)
    assert len(canonical_json(report.to_content())) == size
    return report


def test_an_event_carries_its_files_as_compact_descriptors():
    photos = tuple(photo(n) for n in range(2))
    assert all(len(p.to_json()) == DESCRIPTOR_BYTES and p.thumbnail for p in photos)
    content = request(attachments=photos).to_content()
    carried = content["attachments"]
    assert [item["pad"] for item in carried] == ["", ""]
    assert all("thumbnail" not in item for item in carried)
    parsed = parse_event(content)
    assert isinstance(parsed, Request)
    assert [a.sha256 for a in parsed.attachments] == [p.sha256 for p in photos]
    assert parsed.attachments == tuple(compact(p) for p in photos)


def test_a_full_length_descriptor_in_an_event_is_refused():
    content = request().to_content()
    content["attachments"] = [photo(1).to_dict()]  # thumbnail and pad: not compact
    with pytest.raises(TeleexpertiseError) as refused:
        parse_event(content)
    assert refused.value.code == "bad_event"


def test_the_largest_event_allowed_fits_one_envelope():
    report = report_of_size(MAX_EVENT_BYTES)
    report.check_size()
    envelope = envelope_of(report.to_content())
    assert len(envelope) < MAX_ENVELOPE_BYTES


def test_a_request_with_every_file_and_the_longest_texts_fits():
    files = tuple(photo(n) for n in range(MAX_ATTACHMENTS))
    full = request(
        reason="r" * MAX_REASON,
        question="q" * MAX_QUESTION,
        clinical_data="c" * MAX_CLINICAL_DATA,
        attachments=files,
        documents=(
            document("demande-teleexpertise.pdf"),
            document("demande-teleexpertise.xml", "application/xml"),
        ),
    )
    full.check_size()
    assert len(envelope_of(full.to_content())) < MAX_ENVELOPE_BYTES


def test_a_step_too_large_for_an_envelope_is_refused_in_both_languages():
    report = report_of_size(MAX_EVENT_BYTES + 1)
    with pytest.raises(TeleexpertiseError) as refused:
        report.check_size()
    assert refused.value.code == "event_too_large"
    assert "32,769" in refused.value.message
    assert "32\N{NARROW NO-BREAK SPACE}769 octets" in refused.value.message_fr


def test_a_thumbnail_is_what_the_compact_form_drops():
    descriptor, image = worst_photo_descriptor()
    small = compact(descriptor)
    assert small.thumbnail is None
    assert small.pad == ""
    assert (small.blob, small.key, small.sha256, small.size) == (
        descriptor.blob,
        descriptor.key,
        descriptor.sha256,
        descriptor.size,
    )
    assert image not in canonical_json(small.to_dict())
