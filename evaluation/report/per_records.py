"""Values that several tables, figures and texts of a notebook derive from the same records.

A figure and its alt text, or the key-figure table and the conclusions, ask for the same
indicator's values per period or per school year: `per_records` computes them once per records
frame (held weakly: gone with the notebook's estimate set) and hands out copies.
"""

from __future__ import annotations

import functools
import weakref
from collections.abc import Callable
from typing import Any

import pandas as pd


def per_records(fn: Callable[[Any, str], pd.DataFrame]) -> Callable[[Any, str], pd.DataFrame]:
    """Memoise `fn(es, indicator_id)` per records frame `es.data[indicator_id]` and the settings
    it reads (report year, disclosure threshold)."""
    cache: dict[tuple, tuple[weakref.ref, pd.DataFrame]] = {}

    @functools.wraps(fn)
    def wrapper(es: Any, indicator_id: str) -> pd.DataFrame:
        records = es.data[indicator_id]
        key = (id(records), len(records), indicator_id, es.params.school_year,
               es.params.disclosure.min_count)
        ref, value = cache.get(key, (None, None))
        if ref is None or ref() is not records:
            for gone in [k for k, (r, _) in cache.items() if r() is None]:
                del cache[gone]
            value = fn(es, indicator_id)
            cache[key] = (weakref.ref(records), value)
        return value.copy()

    return wrapper
