"""Dataset loaders: local files first (``path`` or ``$GAFLOW_DATA``), the HF hub when online.

Local layout (see the data README): ``sst2/``, ``imdb/``, ``ag_news/``, ``yelp_polarity/``,
``eraser_movies/``, ``amazon_polarity/``. Where a dataset has no local training split (IMDB,
AG News, Yelp, Amazon) the one local
file is cut into a fixed ``train`` / ``test`` partition by :func:`split_of` (a hash of the example
id, so it never changes with file order, machine or library version). The zoo models were trained
on ``train`` and every accuracy is measured on ``test`` only.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import InputError, UnknownNameError

ENV_VAR = "GAFLOW_DATA"
SPLIT_SALT = "gaflow-split-v1"


@dataclass(frozen=True)
class TextDataset:
    """Texts with integer labels.

    Attributes:
        name, split: what was loaded.
        texts: the inputs, as given to the tokenizer.
        labels: class indices into ``label_names``.
        label_names: one name per class.
        ids: a stable id per example (file name, line number or dataset id).
        rationales: ERASER only: per example, human rationale spans as character
            ``(start, end)`` pairs (end exclusive) into ``texts[i]``; ``None`` elsewhere.
        source: where the data came from (a path or ``hf:<hub id>``).
    """

    name: str
    split: str
    texts: list[str]
    labels: list[int]
    label_names: list[str]
    ids: list[str]
    rationales: list[list[tuple[int, int]]] | None = None
    source: str = ""
    info: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.texts)

    def subset(self, indices) -> TextDataset:
        """The examples at ``indices`` (in that order)."""
        idx = [int(i) for i in indices]
        return TextDataset(
            name=self.name,
            split=self.split,
            texts=[self.texts[i] for i in idx],
            labels=[self.labels[i] for i in idx],
            label_names=list(self.label_names),
            ids=[self.ids[i] for i in idx],
            rationales=None if self.rationales is None else [self.rationales[i] for i in idx],
            source=self.source,
            info=dict(self.info),
        )


def data_root(path: str | os.PathLike | None = None) -> Path:
    """The local data folder: ``path`` if given, else ``$GAFLOW_DATA``."""
    chosen = path if path is not None else os.environ.get(ENV_VAR)
    if not chosen:
        raise InputError(
            f"no local data folder: pass path=... or set {ENV_VAR} to the folder that holds "
            "sst2/, imdb/, ag_news/, yelp_polarity/, eraser_movies/, amazon_polarity/"
        )
    root = Path(chosen).expanduser()
    if not root.is_dir():
        raise InputError(f"data folder {root} does not exist (from {'path' if path else ENV_VAR})")
    return root


def split_of(name: str, example_id: str, test_count: int, all_ids: list[str]) -> str:
    """``"test"`` if ``example_id`` is among the ``test_count`` ids of smallest hash, else
    ``"train"``. The hash is sha256 of ``"gaflow-split-v1:<name>:<id>"``."""
    return "test" if example_id in _test_ids(name, tuple(all_ids), test_count) else "train"


_TEST_CACHE: dict[tuple[str, int, int], frozenset[str]] = {}


def _test_ids(name: str, all_ids: tuple[str, ...], test_count: int) -> frozenset[str]:
    key = (name, hash(all_ids), test_count)
    if key not in _TEST_CACHE:
        ranked = sorted(
            all_ids,
            key=lambda i: hashlib.sha256(f"{SPLIT_SALT}:{name}:{i}".encode()).hexdigest(),
        )
        _TEST_CACHE[key] = frozenset(ranked[:test_count])
    return _TEST_CACHE[key]


def _partition(ds: TextDataset, split: str, test_count: int) -> TextDataset:
    test = _test_ids(ds.name, tuple(ds.ids), test_count)
    keep = [k for k, i in enumerate(ds.ids) if (i in test) == (split == "test")]
    out = ds.subset(keep)
    info = {**ds.info, "partition": f"{split} part of the local file: {test_count} test ids of "
            f"smallest sha256('{SPLIT_SALT}:{ds.name}:<id>'), the rest train"}
    return TextDataset(**{**out.__dict__, "split": split, "info": info})


# --- one reader per local dataset ----------------------------------------------------------


def _read_sst2(root: Path, split: str) -> TextDataset:
    d = root / "sst2"
    names = ["negative", "positive"]
    if split in ("train", "dev", "validation"):
        f = d / ("train.tsv" if split == "train" else "dev.tsv")
        texts, labels = [], []
        with _open(f) as fh:
            reader = csv.reader(fh, delimiter="\t", quoting=csv.QUOTE_NONE)
            header = next(reader)
            if header != ["sentence", "label"]:
                raise InputError(f"{f}: expected header sentence<TAB>label, got {header}")
            for row in reader:
                texts.append(row[0].strip())
                labels.append(int(row[1]))
        ids = [f"{f.name}:{k}" for k in range(len(texts))]
        return TextDataset("sst2", split, texts, labels, names, ids, source=str(f))
    f = d / "stsa.binary.test"
    texts, labels = [], []
    with _open(f) as fh:
        for line in fh:
            lab, _, sent = line.rstrip("\n").partition(" ")
            labels.append(int(lab))
            texts.append(sent.strip())
    ids = [f"{f.name}:{k}" for k in range(len(texts))]
    return TextDataset("sst2", split, texts, labels, names, ids, source=str(f))


def _read_imdb(root: Path, split: str) -> TextDataset:
    f = root / "imdb" / "test_subset_2500.jsonl"
    with _open(f) as fh:
        rows = [json.loads(line) for line in fh]
    texts = [r["text"].replace("<br />", " ") for r in rows]
    ds = TextDataset(
        "imdb", split, texts, [int(r["label"]) for r in rows], ["negative", "positive"],
        [r["id"] for r in rows], source=str(f), info={"html": "<br /> replaced by a space"},
    )
    return _partition(ds, split, 1000)


def _read_ag_news(root: Path, split: str) -> TextDataset:
    d = root / "ag_news"
    with _open(d / "classes.txt") as fh:
        names = [line.strip() for line in fh if line.strip()]
    texts, labels = [], []
    with _open(d / "test.csv") as fh:
        for row in csv.reader(fh):
            labels.append(int(row[0]) - 1)
            texts.append(" ".join(f.replace("\\n", " ").replace("\\", " ") for f in row[1:]))
    ids = [f"test.csv:{k}" for k in range(len(texts))]
    ds = TextDataset("ag_news", split, texts, labels, names, ids, source=str(d / "test.csv"),
                     info={"text": "title + ' ' + description; 1..4 labels shifted to 0..3"})
    return _partition(ds, split, 2000)


def _read_yelp(root: Path, split: str) -> TextDataset:
    f = root / "yelp_polarity" / "textfooler_yelp_1000.txt"
    texts, labels = [], []
    with _open(f) as fh:
        for line in fh:
            lab, _, text = line.rstrip("\n").partition(" ")
            labels.append(int(lab))
            texts.append(" ".join(text.replace("\\n", " ").split()))
    ids = [f"{f.name}:{k}" for k in range(len(texts))]
    ds = TextDataset("yelp_polarity", split, texts, labels, ["negative", "positive"], ids,
                     source=str(f), info={"text": "literal \\n replaced by a space"})
    return _partition(ds, split, 500)


def _read_amazon(root: Path, split: str) -> TextDataset:
    """The first 1,000 reviews of the Amazon Polarity test set, fastText format:
    ``__label__1`` (negative) or ``__label__2`` (positive), a space, then ``<title>: <text>``.

    The text is the rest of the line as it stands, i.e. ``title + ": " + content``; the hub
    path joins the hub's ``title`` and ``content`` columns the same way, so a review reads the
    same offline and online. (Titles may hold ": " themselves, so the line is not split.)
    """
    f = root / "amazon_polarity" / "test_first1000.ft.txt"
    texts, labels = [], []
    with _open(f) as fh:
        for k, line in enumerate(fh):
            lab, _, text = line.rstrip("\n").partition(" ")
            if lab not in ("__label__1", "__label__2") or not text.strip():
                raise InputError(f"{f}:{k + 1}: expected '__label__1|2 <title>: <text>', "
                                 f"got {line[:60]!r}")
            labels.append(int(lab[-1]) - 1)
            texts.append(text.strip())
    ids = [f"{f.name}:{k}" for k in range(len(texts))]
    ds = TextDataset("amazon_polarity", split, texts, labels, ["negative", "positive"], ids,
                     source=str(f), info={"text": "title + ': ' + content (the fastText line); "
                                          "__label__1/2 shifted to 0/1"})
    return _partition(ds, split, 500)


def _read_eraser(root: Path, split: str) -> TextDataset:
    d = root / "eraser_movies"
    fname = {"train": "train.jsonl", "val": "val.jsonl", "validation": "val.jsonl",
             "test": "test.jsonl"}[split]
    texts, labels, ids, rats = [], [], [], []
    with _open(d / fname) as fh:
        rows = [json.loads(line) for line in fh]
    for row in rows:
        doc = row["annotation_id"]
        words = (d / "docs" / doc).read_text(encoding="utf-8").split()
        starts, pos = [], 0
        for w in words:
            starts.append(pos)
            pos += len(w) + 1
        text = " ".join(words)
        spans = []
        for group in row["evidences"]:
            for ev in group:
                s, e = int(ev["start_token"]), int(ev["end_token"])
                spans.append((starts[s], starts[e - 1] + len(words[e - 1])))
        texts.append(text)
        labels.append({"NEG": 0, "POS": 1}[row["classification"]])
        ids.append(doc)
        rats.append(sorted(set(spans)))
    return TextDataset("eraser_movies", split, texts, labels, ["negative", "positive"], ids,
                       rationales=rats, source=str(d / fname),
                       info={"text": "document tokens joined by single spaces"})


def _open(f: Path):
    if not f.is_file():
        raise InputError(f"missing data file {f}; see the data README for the expected layout")
    return f.open(encoding="utf-8", newline="")


@dataclass(frozen=True)
class DatasetSpec:
    reader: Callable[[Path, str], TextDataset] | None
    splits: tuple[str, ...]
    hub_id: str
    held_out: str = "test"  # the split evaluations use by default


DATASETS: dict[str, DatasetSpec] = {
    "sst2": DatasetSpec(_read_sst2, ("train", "dev", "validation", "test"), "stanfordnlp/sst2",
                        held_out="dev"),
    "imdb": DatasetSpec(_read_imdb, ("train", "test"), "stanfordnlp/imdb"),
    "ag_news": DatasetSpec(_read_ag_news, ("train", "test"), "fancyzhx/ag_news"),
    "yelp_polarity": DatasetSpec(_read_yelp, ("train", "test"), "fancyzhx/yelp_polarity"),
    "eraser_movies": DatasetSpec(
        _read_eraser, ("train", "val", "validation", "test"), "eraser-benchmark/movie_rationales"
    ),
    "amazon_polarity": DatasetSpec(_read_amazon, ("train", "test"), "fancyzhx/amazon_polarity"),
}


def default_split(name: str) -> str:
    """The split that evaluations and benchmarks use when none is given: the dataset's
    held-out part (SST-2: ``dev``, whose labels are public; elsewhere ``test``)."""
    spec = DATASETS.get(name)
    return spec.held_out if spec is not None else "test"


def load_dataset(name: str, split: str, path: str | os.PathLike | None = None) -> TextDataset:
    """Load ``split`` of dataset ``name``.

    Args:
        name: one of :data:`DATASETS` (``sst2``, ``imdb``, ``ag_news``, ``yelp_polarity``,
            ``eraser_movies``, ``amazon_polarity``).
        split: see each spec's ``splits``. For IMDB, AG News, Yelp and Amazon the local
            ``train`` and ``test`` are the fixed partition of the one local file (1,500/1,000,
            5,600/2,000, 500/500, 500/500). Amazon texts are ``title + ": " + content``.
        path: the local data folder; default ``$GAFLOW_DATA``. With neither, the HF hub is
            tried through the ``datasets`` package (online only).
    """
    if name not in DATASETS:
        raise UnknownNameError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}")
    spec = DATASETS[name]
    if split not in spec.splits:
        raise InputError(f"dataset {name!r} has no split {split!r}; splits: {spec.splits}")
    local = path is not None or os.environ.get(ENV_VAR)
    if local and spec.reader is not None:
        return spec.reader(data_root(path), split)
    return _from_hub(name, split, spec, local_missing=bool(local))


def _from_hub(name: str, split: str, spec: DatasetSpec, local_missing: bool) -> TextDataset:
    why = "has no local files" if local_missing else f"no local folder is set ({ENV_VAR})"
    offline = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("HF_DATASETS_OFFLINE")
    try:
        import datasets  # noqa: F401
    except ImportError:
        datasets = None
    if datasets is None or offline:
        raise InputError(
            f"dataset {name!r} {why}, and the Hugging Face hub cannot be used here "
            f"({'offline mode' if offline else 'the datasets package is not installed'}). "
            f"Online, `pip install datasets` loads {spec.hub_id!r}."
        )
    import datasets as hf

    hub_split = {"dev": "validation", "val": "validation"}.get(split, split)
    ds = hf.load_dataset(spec.hub_id, split=hub_split)
    text_col = next(c for c in ("sentence", "text", "content", "review") if c in ds.column_names)
    feature = ds.features["label"]
    names = list(getattr(feature, "names", [])) or sorted({str(x) for x in ds["label"]})
    texts = list(ds[text_col])
    if "title" in ds.column_names:  # amazon_polarity: joined as in the local fastText file
        texts = [f"{t}: {x}" for t, x in zip(ds["title"], texts, strict=True)]
    ids = [str(i) for i in (ds["idx"] if "idx" in ds.column_names else range(len(texts)))]
    if any(int(x) < 0 for x in ds["label"]):
        raise InputError(f"{spec.hub_id} split {hub_split!r} has no labels (label -1)")
    return TextDataset(name, split, texts, [int(x) for x in ds["label"]], names, ids,
                       source=f"hf:{spec.hub_id}")
