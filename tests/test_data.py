"""Dataset loaders: row counts, label sets, the fixed train/test partitions, ERASER rationales."""

from __future__ import annotations

import hashlib
from collections import Counter

import pytest

from gaflow.data import load_dataset
from gaflow.errors import InputError, UnknownNameError

# (name, split) -> (rows, label counts), from the data README
EXPECTED = {
    ("sst2", "train"): (67349, {0: 29780, 1: 37569}),
    ("sst2", "dev"): (872, {0: 428, 1: 444}),
    ("sst2", "test"): (1821, {0: 912, 1: 909}),
    ("eraser_movies", "train"): (1600, {0: 800, 1: 800}),
    ("eraser_movies", "val"): (200, {0: 100, 1: 100}),
    ("eraser_movies", "test"): (199, {0: 100, 1: 99}),
}
# one local file cut into train/test: (file rows, test rows, label counts of the whole file)
PARTITIONED = {
    "imdb": (2500, 1000, {0: 1250, 1: 1250}),
    "ag_news": (7600, 2000, {0: 1900, 1: 1900, 2: 1900, 3: 1900}),
    "yelp_polarity": (1000, 500, {0: 518, 1: 482}),
    "amazon_polarity": (1000, 500, {0: 498, 1: 502}),
}


@pytest.mark.parametrize(("name", "split"), list(EXPECTED))
def test_rows_and_labels(data_dir, name, split):
    ds = load_dataset(name, split, data_dir)
    rows, counts = EXPECTED[(name, split)]
    assert len(ds) == rows == len(ds.labels) == len(ds.ids)
    assert Counter(ds.labels) == counts
    assert all(isinstance(t, str) and t.strip() for t in ds.texts)
    assert len(set(ds.ids)) == rows


@pytest.mark.parametrize("name", list(PARTITIONED))
def test_partition_disjoint_complete_stable(data_dir, name):
    rows, n_test, counts = PARTITIONED[name]
    train = load_dataset(name, "train", data_dir)
    test = load_dataset(name, "test", data_dir)
    assert len(test) == n_test and len(train) == rows - n_test
    assert not set(train.ids) & set(test.ids)
    # texts shared by both parts are only the file's own duplicates (IMDB has one, AG News some)
    repeated = {t for t, c in Counter(train.texts + test.texts).items() if c > 1}
    assert set(train.texts) & set(test.texts) <= repeated
    assert len(repeated) < 0.01 * rows
    assert Counter(train.labels) + Counter(test.labels) == counts
    assert set(test.labels) == set(counts)
    # the partition is a function of the ids only: recompute it independently
    ranked = sorted(
        train.ids + test.ids,
        key=lambda i: hashlib.sha256(f"gaflow-split-v1:{name}:{i}".encode()).hexdigest(),
    )
    assert set(ranked[:n_test]) == set(test.ids)
    again = load_dataset(name, "test", data_dir)
    assert again.ids == test.ids and again.texts == test.texts


def test_partition_pinned(data_dir):
    """The held-out ids never change (the zoo models were trained on the rest)."""
    assert sorted(load_dataset("imdb", "test", data_dir).ids)[:3] == [
        "test/neg/10020_1.txt", "test/neg/10030_3.txt", "test/neg/10040_2.txt"]
    assert sorted(load_dataset("ag_news", "test", data_dir).ids)[:3] == [
        "test.csv:0", "test.csv:1001", "test.csv:1010"]
    assert sorted(load_dataset("amazon_polarity", "test", data_dir).ids)[:3] == [
        "test_first1000.ft.txt:0", "test_first1000.ft.txt:1", "test_first1000.ft.txt:100"]
    assert sorted(load_dataset("amazon_polarity", "train", data_dir).ids)[:3] == [
        "test_first1000.ft.txt:10", "test_first1000.ft.txt:106", "test_first1000.ft.txt:107"]


def test_label_names_and_text_cleanup(data_dir):
    ag = load_dataset("ag_news", "test", data_dir)
    assert ag.label_names == ["World", "Sports", "Business", "Sci/Tech"]
    assert not any("\\" in t for t in ag.texts)
    yelp = load_dataset("yelp_polarity", "test", data_dir)
    assert not any("\\n" in t for t in yelp.texts)
    imdb = load_dataset("imdb", "test", data_dir)
    assert not any("<br />" in t for t in imdb.texts)
    sst = load_dataset("sst2", "dev", data_dir)
    assert sst.texts[0] == "it 's a charming and often affecting journey ."
    assert sst.label_names == ["negative", "positive"]


def test_amazon_text_and_labels(data_dir):
    """Title and review joined by ": " (the fastText line after its label); 1/2 -> 0/1."""
    lines = (data_dir / "amazon_polarity" / "test_first1000.ft.txt").read_text().splitlines()
    test = load_dataset("amazon_polarity", "test", data_dir)
    train = load_dataset("amazon_polarity", "train", data_dir)
    assert test.label_names == train.label_names == ["negative", "positive"]
    by_id = dict(zip(test.ids + train.ids, zip(test.texts + train.texts,
                                                 test.labels + train.labels, strict=True),
                     strict=True))
    assert by_id["test_first1000.ft.txt:0"] == (
        lines[0].removeprefix("__label__2 "), 1)
    assert by_id["test_first1000.ft.txt:0"][0].startswith(
        "Great CD: My lovely Pat has one of the GREAT voices of her generation.")
    for k in (0, 2, 10, 999):  # line 2 ("Batteries died ...") is a negative review
        label, text = lines[k].split(" ", 1)
        assert by_id[f"test_first1000.ft.txt:{k}"] == (text, {"__label__1": 0,
                                                              "__label__2": 1}[label])
    assert by_id["test_first1000.ft.txt:2"][1] == 0


def test_amazon_hub_path_joins_like_local(data_dir, monkeypatch):
    """Online (faked `datasets` module, no network): title and content joined as locally."""
    import sys
    import types

    local = load_dataset("amazon_polarity", "test", data_dir)
    first = local.texts[local.ids.index("test_first1000.ft.txt:0")]
    title, content = "Great CD", first.removeprefix("Great CD: ")

    class Feature:
        names = ["negative", "positive"]

    class Hub:
        column_names = ["label", "title", "content"]
        features = {"label": Feature()}

        def __getitem__(self, col):
            return {"label": [1], "title": [title], "content": [content]}[col]

    calls = []
    fake = types.SimpleNamespace(
        load_dataset=lambda hub_id, split: calls.append((hub_id, split)) or Hub())
    monkeypatch.setitem(sys.modules, "datasets", fake)
    for var in ("GAFLOW_DATA", "HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):
        monkeypatch.delenv(var, raising=False)
    hub = load_dataset("amazon_polarity", "test")
    assert calls == [("fancyzhx/amazon_polarity", "test")]
    assert hub.texts == [first] and hub.labels == [1]
    assert hub.source == "hf:fancyzhx/amazon_polarity"


def test_eraser_rationales_are_char_spans(data_dir):
    import json

    ds = load_dataset("eraser_movies", "test", data_dir)
    rows = [json.loads(x) for x in (data_dir / "eraser_movies" / "test.jsonl").open()]
    for k in (0, 57, 198):
        texts = {ev["text"] for group in rows[k]["evidences"] for ev in group}
        got = {ds.texts[k][a:b] for a, b in ds.rationales[k]}
        assert got == texts
    covered = sum(b - a for a, b in ds.rationales[0]) / len(ds.texts[0])
    assert 0.05 < covered < 0.8


def test_errors(data_dir, monkeypatch, tmp_path):
    with pytest.raises(UnknownNameError, match="unknown dataset"):
        load_dataset("sst5", "train", data_dir)
    with pytest.raises(InputError, match="no split"):
        load_dataset("imdb", "dev", data_dir)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(InputError, match="missing data file"):
        load_dataset("sst2", "dev", tmp_path)
    with pytest.raises(InputError, match="missing data file .*test_first1000.ft.txt"):
        load_dataset("amazon_polarity", "test", tmp_path)
    bad = tmp_path / "amazon_polarity"
    bad.mkdir()
    (bad / "test_first1000.ft.txt").write_text("__label__3 Title: text\n")
    with pytest.raises(InputError, match="test_first1000.ft.txt:1: expected"):
        load_dataset("amazon_polarity", "test", tmp_path)
    with pytest.raises(InputError, match="does not exist"):
        load_dataset("sst2", "dev", tmp_path / "nope")
    monkeypatch.delenv("GAFLOW_DATA", raising=False)
    with pytest.raises(InputError, match="no local folder"):
        load_dataset("sst2", "dev")
    with pytest.raises(InputError, match="amazon_polarity.*no local folder is set.*offline"):
        load_dataset("amazon_polarity", "test")


def test_subset(data_dir):
    ds = load_dataset("eraser_movies", "val", data_dir)
    sub = ds.subset([3, 1])
    assert sub.ids == [ds.ids[3], ds.ids[1]] and sub.rationales[0] == ds.rationales[3]
