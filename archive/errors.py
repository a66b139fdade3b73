"""Errors of the ``archive`` package: a stable code for programs, one line in English
and one in French for people (as ``documents.errors``)."""

from __future__ import annotations

from documents.errors import DocumentError


class ArchiveError(DocumentError):
    """What was given to build an archive is not valid, or the archive would pass a
    limit. ``code`` is stable; ``message`` (English) and ``message_fr`` (French)."""
