"""Pseudonymisation: keyed, stable, unlinkable without the key; BSNs recognised by the eleven-test;
the key only from the environment and never in a message."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from evaluation.data.pseudonymisation import (
    KEY_ENV,
    KEY_FILE_ENV,
    PseudonymisationKeyError,
    is_bsn,
    key_fingerprint,
    load_key,
    looks_like_bsn_column,
    pseudonymise,
)

KEY = b"0123456789abcdef0123456789abcdef-test-key"
OTHER_KEY = b"fedcba9876543210fedcba9876543210-test-key"
WEIGHTS = (9, 8, 7, 6, 5, 4, 3, 2, -1)


def reference_is_bsn(value: object) -> bool:
    """The eleven-test written out plainly, to check the vectorised version against."""
    text = str(value).strip() if value is not None else ""
    if not re.fullmatch(r"\d{8,9}", text):
        return False
    digits = [int(c) for c in text.zfill(9)]
    return any(digits) and sum(d * w for d, w in zip(digits, WEIGHTS, strict=True)) % 11 == 0


def valid_bsns(n: int, seed: int = 1) -> list[str]:
    """n distinct valid BSNs: 8 random digits, the ninth chosen so the eleven-test passes."""
    rng = np.random.default_rng(seed)
    out: list[str] = []
    while len(out) < n:
        head = rng.integers(0, 10, size=8)
        if head[0] == 0:
            continue
        partial = int(head @ np.array(WEIGHTS[:8]))
        last = partial % 11  # partial - last is divisible by 11
        if last == 10:
            continue
        bsn = "".join(map(str, head)) + str(last)
        if bsn not in out:
            out.append(bsn)
    return out


def test_valid_bsns_pass_and_near_misses_fail():
    good = valid_bsns(50)
    assert is_bsn(good).all()
    assert all(reference_is_bsn(b) for b in good)
    # Changing one digit breaks the eleven-test (weights are coprime to 11).
    bad = [b[:4] + str((int(b[4]) + 1) % 10) + b[5:] for b in good]
    assert not is_bsn(bad).any()


def test_is_bsn_edge_cases():
    values = ["111222333", " 111222333 ", "123456782", 111222333, "000000000", "12345678",
              "1234567890", "11122233", "abc", "", None, np.nan, "11122233a", "1112 22333"]
    got = is_bsn(values)
    assert got.dtype == bool and got.shape == (len(values),)
    assert got.tolist() == [reference_is_bsn(v) if v is not np.nan else False for v in values]
    assert got[:4].all() and not got[4]


def test_eight_digit_values_are_zero_padded():
    # 012345672 passes the eleven-test; a spreadsheet shows it as 12345672.
    assert reference_is_bsn("012345672")
    assert is_bsn(["12345672", 12345672]).all()


@given(st.lists(st.one_of(st.text(alphabet="0123456789 x", max_size=11),
                          st.integers(min_value=0, max_value=10**10), st.none()), max_size=40))
@settings(max_examples=150, deadline=None)
def test_is_bsn_matches_reference(values):
    assert is_bsn(values).tolist() == [reference_is_bsn(v) for v in values]


def test_looks_like_bsn_column_threshold():
    bsn = valid_bsns(10)
    assert looks_like_bsn_column(pd.Series(bsn))
    assert looks_like_bsn_column(pd.Series(bsn[:5] + ["1234"] * 5))  # half
    assert not looks_like_bsn_column(pd.Series(bsn[:4] + ["1234"] * 6))
    assert looks_like_bsn_column(pd.Series(bsn + [None, "", " "] * 10))  # empties do not count
    assert not looks_like_bsn_column(pd.Series([None, ""], dtype="string"))
    assert not looks_like_bsn_column(pd.Series([f"{100000 + i}" for i in range(50)]))


def test_pseudonym_format_and_stability():
    s = pd.Series(["1001", "1002", "1001", " 1001", None, ""], name="leerlingnummer")
    out = pseudonymise(s, KEY, "stu_")
    assert out.dtype == "string" and out.name == "leerlingnummer"
    assert out[:4].str.fullmatch(r"stu_[0-9a-f]{16}").all()
    assert out[0] == out[2] == out[3] != out[1]
    assert out[4:].isna().all()
    # Same key and value: same pseudonym, also in a later call and another order.
    again = pseudonymise(pd.Series(["1002", "1001"]), KEY, "stu_")
    assert again.tolist() == [out[1], out[0]]


def test_pseudonym_depends_on_key_and_prefix():
    s = pd.Series(["1001", "1002"])
    a = pseudonymise(s, KEY, "stu_")
    assert not (a == pseudonymise(s, OTHER_KEY, "stu_")).any()
    # The same number as a report number does not link to the pupil.
    rep = pseudonymise(s, KEY, "rep_")
    assert not (a.str.slice(4) == rep.str.slice(4)).any()


def test_pseudonymise_numbers_and_many_values():
    s = pd.Series(np.arange(20_000) % 5_000)
    out = pseudonymise(s, KEY, "x_")
    assert out.nunique() == 5_000
    assert (out.iloc[:5_000].to_numpy() == out.iloc[5_000:10_000].to_numpy()).all()


def test_load_key_from_env(monkeypatch):
    monkeypatch.setenv(KEY_ENV, "  " + KEY.decode() + "\n")
    monkeypatch.delenv(KEY_FILE_ENV, raising=False)
    assert load_key() == KEY


def test_load_key_from_file(monkeypatch, tmp_path):
    path = tmp_path / "key.txt"
    path.write_text(KEY.decode() + "\n")
    monkeypatch.delenv(KEY_ENV, raising=False)
    monkeypatch.setenv(KEY_FILE_ENV, str(path))
    assert load_key() == KEY


def test_missing_key_says_how_to_make_one(monkeypatch):
    monkeypatch.delenv(KEY_ENV, raising=False)
    monkeypatch.delenv(KEY_FILE_ENV, raising=False)
    with pytest.raises(PseudonymisationKeyError) as exc:
        load_key()
    message = str(exc.value)
    assert KEY_ENV in message and KEY_FILE_ENV in message
    assert "secrets.token_hex(32)" in message


def test_missing_key_file(monkeypatch, tmp_path):
    monkeypatch.delenv(KEY_ENV, raising=False)
    monkeypatch.setenv(KEY_FILE_ENV, str(tmp_path / "nope.txt"))
    with pytest.raises(PseudonymisationKeyError, match="nope.txt"):
        load_key()


def test_short_key_refused_without_showing_it(monkeypatch):
    monkeypatch.setenv(KEY_ENV, "geheim-kort")
    with pytest.raises(PseudonymisationKeyError) as exc:
        load_key()
    assert "too short" in str(exc.value)
    assert "geheim-kort" not in str(exc.value)


def test_fingerprint_does_not_reveal_the_key():
    fp = key_fingerprint(KEY)
    assert re.fullmatch(r"[0-9a-f]{8}", fp)
    assert fp not in KEY.hex() and fp != key_fingerprint(OTHER_KEY)
