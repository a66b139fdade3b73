"""Errors of the ``documents`` package: a stable code for programs, one line in English
and one in French for people."""

from __future__ import annotations


class DocumentError(ValueError):
    """Something given to a document builder is not valid. ``code`` is stable;
    ``message`` (English) and ``message_fr`` (French) are one line each."""

    def __init__(self, code: str, message: str, message_fr: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.message_fr = message_fr

    def to_dict(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message, "message_fr": self.message_fr}
