"""Search keys: names and towns folded to lower-case ASCII words.

``"Élodie  LEFÈVRE-Saint"`` becomes ``"elodie lefevre saint"``. The directory search
matches prefixes of these keys, so a search is accent- and case-insensitive with a plain
B-tree index (see docs/identity.md, "Directory search").
"""

from __future__ import annotations

import re
import unicodedata

# Letters that Unicode decomposition does not reduce to ASCII.
_SPECIAL = str.maketrans(
    {"œ": "oe", "Œ": "oe", "æ": "ae", "Æ": "ae", "ß": "ss", "ø": "o", "Ø": "o"}
)
_NOT_WORD = re.compile(r"[^a-z0-9]+")


def search_key(text: str) -> str:
    """Lower-case ASCII words separated by single spaces; empty for empty input."""
    if not text:
        return ""
    decomposed = unicodedata.normalize("NFKD", text.translate(_SPECIAL))
    ascii_text = decomposed.encode("ascii", "ignore").decode("ascii").lower()
    return _NOT_WORD.sub(" ", ascii_text).strip()


def name_keys(*, first_name: str, last_name: str) -> tuple[str, str]:
    """``(last first, first last)``: a name search matches either order by prefix."""
    first = search_key(first_name)
    last = search_key(last_name)
    return f"{last} {first}".strip(), f"{first} {last}".strip()
