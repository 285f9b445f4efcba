"""Checks on the shipped synthetic ticket data set and its generator."""

from __future__ import annotations

import re
import subprocess
import sys
from importlib import resources
from pathlib import Path

import pandas as pd
import pytest

from batch_magic.datasets import load_tickets

ROOT = Path(__file__).resolve().parent.parent
GENERATOR = ROOT / "scripts" / "make_dataset.py"

CATEGORIES = ["billing", "shipping", "technical", "account", "returns"]
SENTIMENTS = {"positive", "negative", "neutral"}
COLUMNS = [
    "ticket_id",
    "customer",
    "product",
    "order_number",
    "text",
    "category",
    "sentiment",
    "urgent",
]


@pytest.fixture(scope="module")
def tickets() -> pd.DataFrame:
    return load_tickets()


def prefix_classifier(text: str) -> str | None:
    """Pick the category with most words sharing its first four letters."""
    words = [w for w in re.findall(r"[a-z]+", text.lower()) if len(w) >= 4]
    scores = [sum(w[:4] == label[:4] for w in words) for label in CATEGORIES]
    best = max(scores)
    return CATEGORIES[scores.index(best)] if best else None


def test_shape_and_columns(tickets: pd.DataFrame) -> None:
    assert len(tickets) == 300
    assert list(tickets.columns) == COLUMNS


def test_dtypes(tickets: pd.DataFrame) -> None:
    for column in ("ticket_id", "customer", "product", "order_number", "text"):
        assert isinstance(tickets[column].dtype, pd.StringDtype), column
    assert isinstance(tickets["category"].dtype, pd.CategoricalDtype)
    assert isinstance(tickets["sentiment"].dtype, pd.CategoricalDtype)
    assert pd.api.types.is_bool_dtype(tickets["urgent"])
    # Missing values are pandas NA, not empty strings.
    assert tickets["text"].isna().any()
    assert not (tickets["text"] == "").any()
    assert not (tickets["order_number"] == "").any()


def test_label_sets_exact(tickets: pd.DataFrame) -> None:
    assert list(tickets["category"].cat.categories) == CATEGORIES
    assert set(tickets["category"].astype(str)) == set(CATEGORIES)
    assert set(tickets["sentiment"].cat.categories) == SENTIMENTS
    assert set(tickets["sentiment"].astype(str)) == SENTIMENTS
    assert not tickets["category"].isna().any()
    assert not tickets["sentiment"].isna().any()
    assert set(tickets["urgent"]) == {True, False}


def test_ids_unique_and_well_formed(tickets: pd.DataFrame) -> None:
    assert tickets["ticket_id"].is_unique
    assert list(tickets["ticket_id"]) == [f"T{i:04d}" for i in range(1, 301)]


def test_missing_and_duplicate_texts_exist(tickets: pd.DataFrame) -> None:
    assert tickets["text"].isna().sum() == 5
    texts = tickets["text"].dropna()
    assert texts.duplicated().sum() == 10
    dupes = tickets[tickets["text"].duplicated(keep=False) & tickets["text"].notna()]
    # Duplicates are resubmissions: same ticket, different id.
    assert dupes.groupby("text")["ticket_id"].nunique().min() >= 2


def test_order_numbers(tickets: pd.DataFrame) -> None:
    present = tickets["order_number"].dropna()
    assert 0.6 <= len(present) / len(tickets) <= 0.8
    assert present.str.fullmatch(r"NW-\d{5}").all()
    with_text = tickets.dropna(subset=["order_number", "text"])
    for number, text in zip(with_text["order_number"], with_text["text"], strict=True):
        assert number in text


def test_texts_are_short_and_stress_prompts(tickets: pd.DataFrame) -> None:
    texts = tickets["text"].dropna()
    assert texts.str.len().max() < 400
    assert texts.str.contains('"', regex=False).any()
    assert texts.str.contains("{", regex=False).any()
    assert texts.str.contains("\n", regex=False).any()
    assert texts.map(lambda t: any(ord(c) > 127 for c in t)).any()
    assert texts.map(lambda t: any(ord(c) > 0xFFFF for c in t)).any()  # emoji


def test_prefix_classifier_accuracy_is_realistic(tickets: pd.DataFrame) -> None:
    rows = tickets.dropna(subset=["text"])
    predicted = rows["text"].map(prefix_classifier)
    accuracy = (predicted == rows["category"].astype(str)).mean()
    assert 0.55 <= accuracy <= 0.9, accuracy


def test_generator_is_deterministic(tmp_path: Path) -> None:
    out = tmp_path / "tickets.csv"
    subprocess.run(
        [sys.executable, str(GENERATOR), "--out", str(out)],
        check=True,
        capture_output=True,
    )
    shipped = resources.files("batch_magic").joinpath("data").joinpath("tickets.csv")
    assert out.read_bytes() == shipped.read_bytes()
