"""Faithfulness metrics on a toy model whose probabilities are known in closed form, the
perturbations, bootstrap, plausibility, and a 5-example ``gaflow bench`` run end to end."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from conftest import _wordpiece_tokenizer

from gaflow import Explanation, cli
from gaflow.errors import InputError
from gaflow.evaluation.benchmark import BenchConfig, evaluate_explanation, sample_indices
from gaflow.evaluation.faithfulness import (
    average_precision,
    log_odds,
    mean_drop,
    token_labels,
    top_k_f1,
)
from gaflow.evaluation.perturb import class_probabilities, counts, perturb, top_positions
from gaflow.evaluation.stats import bootstrap_ci, paired_difference

PAD, MASK, CLS, SEP = 0, 1, 2, 3


class Toy(torch.nn.Module):
    """logit_1 = Σ w[id] over attended tokens, logit_0 = 0: p(1) = sigmoid(Σ w)."""

    def __init__(self, w):
        super().__init__()
        self.w = torch.nn.Parameter(torch.tensor(w, dtype=torch.float64))
        self.config = SimpleNamespace(num_labels=2)

    def forward(self, input_ids, attention_mask):
        s = (self.w[input_ids] * attention_mask).sum(1)
        return SimpleNamespace(logits=torch.stack([torch.zeros_like(s), s], 1))


# the toy's ids are its own; padding is a real tokenizer's ``pad`` (its [PAD] is 0, as here)
TOK = SimpleNamespace(pad_token_id=PAD, mask_token_id=MASK,
                      convert_tokens_to_ids=lambda toks: [int(t) for t in toks],
                      pad=_wordpiece_tokenizer(Path(tempfile.mkdtemp())).pad)
W = [0.5, 0.0, 0.0, 0.0, 2.0, 1.0, -1.0, 0.0, 0.3, 0.2, 0.1, 0.4]  # w[PAD] = 0.5


def sig(x):
    return 1 / (1 + np.exp(-x))


def _exp(ids, scores):
    special = np.array([i in (CLS, SEP) for i in ids])
    return Explanation(
        text="", tokens=[str(i) for i in ids], scores=np.array(scores, float), special=special,
        word_ids=[None] * len(ids), offsets=[(k, k + 1) for k in range(len(ids))], target=1,
        target_label="1", probability=0.0, predicted=1, method="toy", flow_value=1.0,
    )


def test_top_positions_and_counts():
    special = np.array([True, False, False, False, True])
    assert top_positions(np.array([9.0, 1.0, 3.0, 3.0, 8.0]), special, 2).tolist() == [2, 3]
    assert counts(10, [0.1, 0.25, 0.9]) == [1, 2, 9]


def test_perturb_modes_leave_specials():
    ids = [CLS, 4, 5, 6, SEP]
    special = np.array([1, 0, 0, 0, 1], bool)
    assert perturb(ids, np.array([1, 3]), "delete", TOK) == [CLS, 5, SEP]
    assert perturb(ids, np.array([1, 3]), "pad", TOK) == [CLS, PAD, 5, PAD, SEP]
    assert perturb(ids, np.array([2]), "mask", TOK) == [CLS, 4, MASK, 6, SEP]
    assert perturb(ids, np.array([2]), "delete", TOK, special=special, keep=True) == [CLS, 5, SEP]
    with pytest.raises(InputError, match="mode"):
        perturb(ids, np.array([1]), "drop", TOK)


def test_aopc_lodds_comp_suff_by_hand():
    model = Toy(W)
    ids = [CLS, 4, 5, 6, SEP]  # Σw = 2 + 1 - 1 = 2
    exp = _exp(ids, [0.0, 3.0, 2.0, 1.0, 0.0])  # ranking: 4, then 5, then 6
    cfg = BenchConfig(model="toy", dataset="toy", methods=["toy"], n=1,
                      fractions=[1 / 3, 2 / 3], bins=[0.34, 0.67])
    rec = evaluate_explanation(model, TOK, exp, label=1, cfg=cfg)
    p0 = sig(2.0)
    assert rec["p_orig"] == pytest.approx(p0)
    # delete top 1 (id 4): Σ = 0 ; top 2 (4, 5): Σ = -1
    np.testing.assert_allclose(rec["curves"]["delete"], [sig(0.0), sig(-1.0)])
    # [PAD] replacement adds w[PAD] = 0.5 per replaced token: Σ = 0.5 ; Σ = 0
    np.testing.assert_allclose(rec["curves"]["pad"], [sig(0.5), sig(0.0)])
    # ERASER bins 34% -> 1 token, 67% -> 2 tokens; sufficiency keeps only them (+ specials)
    np.testing.assert_allclose(rec["curves"]["comp"], [sig(0.0), sig(-1.0)])
    np.testing.assert_allclose(rec["curves"]["suff"], [sig(2.0), sig(3.0)])
    aopc = mean_drop(np.array([p0]), np.array([rec["curves"]["delete"]]))[0]
    assert aopc == pytest.approx(p0 - (sig(0) + sig(-1)) / 2)
    lo = log_odds(np.array([p0]), np.array([rec["curves"]["pad"]]))[0]
    assert lo == pytest.approx((np.log(sig(0.5) / p0) + np.log(sig(0.0) / p0)) / 2)
    # accuracy after deleting 20% of 3 tokens = round(0.6) = 1 token: Σ = 0 -> tie -> class 0
    assert rec["correct_after_20"] is False and rec["correct"] is True


def test_class_probabilities_batching_is_exact():
    model = Toy(W)
    seqs = [[CLS, 4, SEP], [CLS, 5, 6, 8, 9, SEP], [CLS, SEP]]
    p = class_probabilities(model, seqs, TOK, batch_size=2)
    np.testing.assert_allclose(p[:, 1], [sig(2.0), sig(0.5), sig(0.0)])


def test_plausibility_by_hand():
    offsets = [(0, 0), (0, 3), (4, 7), (8, 11), (0, 0)]
    special = np.array([1, 0, 0, 0, 1], bool)
    labels = token_labels(offsets, [(4, 11)], special)
    assert labels.tolist() == [False, False, True, True, False]
    # ranking by scores: token 2 (hit), token 1 (miss), token 3 (hit): AP = (1 + 2/3) / 2
    scores = np.array([9.0, 0.8, 0.9, 0.1, 9.0])
    assert average_precision(labels[~special], scores[~special]) == pytest.approx(5 / 6)
    # top-2 tokens {2, 1} vs rationale {2, 3}: P = R = 1/2
    assert top_k_f1(labels, scores, ~special) == pytest.approx(0.5)
    assert np.isnan(average_precision(np.zeros(3, bool), np.ones(3)))


def test_paired_difference_by_hand():
    """A constant shift is its own CI; the paired CI of a shared noisy part is narrower than
    either method's own interval; the share counts strict wins in the metric's direction."""
    rng = np.random.default_rng(0)
    base = rng.normal(size=200)
    mean, low, high, share = paired_difference(base + 0.1, base)
    assert mean == pytest.approx(0.1) and low == pytest.approx(0.1) and high == pytest.approx(0.1)
    assert share == 1.0
    assert paired_difference(base + 0.1, base, higher_is_better=False)[3] == 0.0
    noisy = base + rng.normal(scale=0.05, size=200) + 0.02
    _, low, high, _ = paired_difference(noisy, base)
    _, own_low, own_high = bootstrap_ci(noisy)
    assert 0 < low < 0.02 < high and high - low < (own_high - own_low) / 5
    a, b = np.array([1.0, np.nan, 3.0]), np.array([0.0, 1.0, 5.0])
    mean, _, _, share = paired_difference(a, b)  # the NaN pair is dropped: differences 1, -2
    assert mean == pytest.approx(-0.5) and share == 0.5
    with pytest.raises(InputError, match="equal shapes"):
        paired_difference([1.0, 2.0], [1.0])


def test_bootstrap_reproducible_and_covers_mean():
    v = np.random.default_rng(1).normal(size=200)
    a, b = bootstrap_ci(v, seed=3), bootstrap_ci(v, seed=3)
    assert a == b and a[1] < a[0] < a[2]
    assert bootstrap_ci(v, seed=4) != a
    assert np.isnan(bootstrap_ci([np.nan])[0])


def test_sample_indices_seeded():
    assert sample_indices(10, 20, 0) == list(range(10))
    assert sample_indices(100, 5, 7) == sample_indices(100, 5, 7) != sample_indices(100, 5, 8)


def test_bench_end_to_end_resumes_and_is_deterministic(tmp_path, tiny_bert, data_dir, capsys):
    model, tok = tiny_bert
    folder = tmp_path / "tiny"
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    out = tmp_path / "bench"
    args = ["bench", "--model", str(folder), "--dataset", "sst2", "--n", "5", "--out", str(out),
            "--methods", "agf,rollout,occlusion", "--data", str(data_dir), "--no-progress"]
    assert cli.main(args) == 0
    first = json.loads((out / "results.json").read_text())
    assert set(first["methods"]) == {"agf", "rollout", "occlusion"}
    assert all(first["methods"][m]["n"] == 5 for m in first["methods"])
    for f in ("results.md", "results.csv", "aopc_delete.png", "lodds_pad.png"):
        assert (out / f).stat().st_size > 0
    lines = (out / "cache" / "agf.jsonl").read_text().splitlines()
    assert len(lines) == 5
    # a rerun finds everything cached: same numbers, no new lines
    assert cli.main(args) == 0
    again = json.loads((out / "results.json").read_text())
    assert (out / "cache" / "agf.jsonl").read_text().splitlines() == lines
    for m in first["methods"]:
        assert again["methods"][m]["aopc_delete"] == first["methods"][m]["aopc_delete"]
    # a different configuration refuses to mix with the cache
    capsys.readouterr()
    assert cli.main([*args[:-1], "--modes", "delete", "--no-progress"]) == 2
    assert "another configuration" in capsys.readouterr().err


def test_bench_cache_survives_a_cut_line_and_guards_folders(tmp_path, tiny_bert, data_dir):
    from gaflow.evaluation.benchmark import BenchConfig, run_benchmark

    model, tok = tiny_bert
    folder = tmp_path / "tiny"
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    cfg = dict(model=str(folder), dataset="sst2", methods=["rollout"], n=3)
    out = tmp_path / "b"
    run_benchmark(BenchConfig(**cfg), out, data_path=data_dir, progress=False)
    cache = out / "cache" / "rollout.jsonl"
    lines = cache.read_text().splitlines()
    cache.write_text("\n".join(lines[:2]) + "\n" + lines[2][:20])  # killed mid-write
    # cached only: the cut line is dropped and nothing is recomputed (n = 2 of 3)
    res = run_benchmark(BenchConfig(**cfg), out, data_path=data_dir, progress=False,
                        cached_only=True)
    assert res["methods"]["rollout"]["n"] == 2
    assert len(cache.read_text().splitlines()) == 2
    both = BenchConfig(**{**cfg, "methods": ["rollout", "attention", "rollout"]})
    before = repr(both)
    res = run_benchmark(both, out, data_path=data_dir, progress=False, cached_only=True)
    assert set(res["methods"]) == {"rollout"}  # attention has no cached example: left out
    assert repr(both) == before  # the caller's configuration is not changed
    assert res["config"]["split"] == "dev" and res["config"]["methods"] == ["rollout",
                                                                            "attention"]
    res = run_benchmark(BenchConfig(**cfg), out, data_path=data_dir, progress=False)
    assert res["methods"]["rollout"]["n"] == 3
    assert len(cache.read_text().splitlines()) == 3
    other = tmp_path / "notes"
    other.mkdir()
    (other / "mine.txt").write_text("keep me")
    with pytest.raises(InputError, match="not empty"):
        run_benchmark(BenchConfig(**cfg), other, data_path=data_dir, progress=False)
    assert (other / "mine.txt").read_text() == "keep me"
    with pytest.raises(InputError, match="positive"):
        run_benchmark(BenchConfig(**{**cfg, "n": 0}), tmp_path / "c", data_path=data_dir)


def test_table_with_a_metric_some_methods_lack():
    """Records cached before a metric existed (here the share entropy) leave a dash, and the
    descriptive entropy is never marked best."""
    from gaflow.evaluation.benchmark import markdown_table

    cell = {"mean": 0.5, "low": 0.4, "high": 0.6}
    summary = {"config": {"dataset": "d", "split": "s", "model": "m", "seed": 0,
                          "max_length": 8},
               "n_examples": 3,
               "methods": {"old": {"n": 3, "seconds_per_example": 0.1, "aopc_delete": cell},
                           "new": {"n": 3, "seconds_per_example": 0.1, "aopc_delete": cell,
                                   "entropy": {"mean": 0.2, "low": 0.1, "high": 0.3}}}}
    table = markdown_table(summary, ["aopc_delete", "entropy"])
    old = next(line for line in table.splitlines() if line.startswith("| old"))
    new = next(line for line in table.splitlines() if line.startswith("| new"))
    assert old.split(" | ")[3] == "—"
    assert "0.200 [0.100, 0.300]" in new and "**0.200" not in new
    assert "| Entropy |" in table
