"""Pseudonymisation of identifiers and detection of citizen service numbers (BSN).

Identifiers are replaced on import by a keyed hash (HMAC-SHA256), so that the same pupil gets the
same pseudonym in every table and every import made with the same key, while nobody without the key
can turn a pseudonym back into a pupil number: pupil numbers are few and guessable, so a plain hash
would be reversible by trying them all. The key therefore lives only outside the project (an
environment variable or a key file), never in params, mappings, outputs or error messages.

BSNs may not enter the project at all: `looks_like_bsn_column` lets the importer refuse a column of
them whatever its header says.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

KEY_ENV = "EVALUATION_HMAC_KEY"
KEY_FILE_ENV = "EVALUATION_HMAC_KEY_FILE"
# A key shorter than this can be guessed; 32 characters is what token_hex(16) gives.
MIN_KEY_LENGTH = 32
HEX_CHARS = 16
KEY_HELP = (
    f"set {KEY_ENV} to a secret of at least {MIN_KEY_LENGTH} characters, or {KEY_FILE_ENV} to the "
    "path of a file holding it. Create one with\n"
    '  python -c "import secrets; print(secrets.token_hex(32))"\n'
    "and keep it outside the project (never in params, mappings or the data folder): the same key "
    "gives the same pseudonyms in every import, so keep it as long as imports must link up."
)

# Weights of the eleven-test (elfproef) for a 9-digit BSN.
BSN_WEIGHTS = np.array([9, 8, 7, 6, 5, 4, 3, 2, -1], dtype=np.int64)
# Share of a column's non-empty values that must pass the eleven-test for the column to count as
# BSNs. Random 9-digit numbers pass with chance 1/11, so half is far above chance.
BSN_COLUMN_SHARE = 0.5


class PseudonymisationKeyError(RuntimeError):
    """No usable key: says how to make one, never shows the key itself."""


def load_key() -> bytes:
    """The HMAC key from `EVALUATION_HMAC_KEY`, else from the file named by
    `EVALUATION_HMAC_KEY_FILE` (surrounding whitespace stripped). Only the environment is read, so
    the key cannot end up in params, mappings or version control by way of this project."""
    value = os.environ.get(KEY_ENV)
    source = KEY_ENV
    if not value:
        path = os.environ.get(KEY_FILE_ENV)
        if not path:
            raise PseudonymisationKeyError(f"no pseudonymisation key: {KEY_HELP}")
        source = f"the key file named by {KEY_FILE_ENV} ({path})"
        try:
            value = Path(path).expanduser().read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise PseudonymisationKeyError(
                f"cannot read {source}: {type(exc).__name__}; {KEY_HELP}") from None
    value = value.strip()
    if len(value) < MIN_KEY_LENGTH:
        raise PseudonymisationKeyError(
            f"the key in {source} is too short ({len(value)} characters); {KEY_HELP}")
    return value.encode("utf-8")


def key_fingerprint(key: bytes) -> str:
    """A short tag that tells whether two imports used the same key (so their pseudonyms link up)
    without revealing anything about the key."""
    return hmac.new(key, b"evaluation key fingerprint", hashlib.sha256).hexdigest()[:8]


def pseudonymise(values: pd.Series, key: bytes, prefix: str) -> pd.Series:
    """Replace each value by `prefix` + the first 16 hex digits of HMAC-SHA256(key, prefix, value).

    The prefix is part of the hashed message, so one number used as pupil number and as report
    number does not give linkable pseudonyms. Empty values stay empty. Values are stripped first,
    so ' 123' and '123' get the same pseudonym.
    """
    text = values.astype("string").str.strip()
    text = text.mask(text == "")
    uniques = text.dropna().unique()
    head = prefix.encode("utf-8") + b"\x00"
    # hmac has no vectorised form: compute once per distinct value (a list comprehension over the
    # unique values, far fewer than the rows), then map the rows onto them.
    digests = [
        prefix + hmac.new(key, head + str(v).encode("utf-8"), hashlib.sha256).hexdigest()[:HEX_CHARS]
        for v in uniques
    ]
    return text.map(dict(zip(uniques, digests, strict=True))).astype("string")


def is_bsn(values: Iterable[object] | pd.Series | np.ndarray) -> np.ndarray:
    """Whether each value is a BSN: 9 digits (8 digits are zero-padded, as spreadsheets drop the
    leading zero), not all zero, passing the eleven-test sum(d_i * w_i) % 11 == 0 with weights
    9, 8, ..., 2, -1. Vectorised over a digit matrix."""
    text = pd.Series(values, dtype="object").astype("string").str.strip()
    ok = text.str.fullmatch(r"\d{8,9}").fillna(False).to_numpy(dtype=bool)
    result = np.zeros(len(text), dtype=bool)
    if not ok.any():
        return result
    padded = text[ok].str.zfill(9)
    digits = (np.frombuffer("".join(padded.tolist()).encode("ascii"), dtype=np.uint8)
              .reshape(-1, 9).astype(np.int64) - ord("0"))
    total = digits @ BSN_WEIGHTS
    result[ok] = (total % 11 == 0) & digits.any(axis=1)
    return result


def looks_like_bsn_column(series: pd.Series, share: float = BSN_COLUMN_SHARE) -> bool:
    """Whether at least `share` of the column's non-empty values are BSNs (and there is at least
    one). Decided on the values, not the header, because exports name the column anything."""
    text = series.astype("string").str.strip()
    text = text[text.notna() & (text != "")]
    if text.empty:
        return False
    return bool(is_bsn(text).mean() >= share)
