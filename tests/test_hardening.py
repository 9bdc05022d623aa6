"""Bad inputs get a clear gaflow error (CLI: exit 2, no traceback), never a crash or a silently
wrong result (issue 17). The explorer's side is in test_server.py."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import saved_model
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import gaflow
from gaflow import GaflowError, InputError, UnknownNameError
from gaflow.cli import main

TEXT = "the dog is not cute but very smart"


# ---------------------------------------------------------------- explain: the text argument


@pytest.mark.parametrize(
    "text, match",
    [
        (None, "text must be a string or a list of strings, got NoneType"),
        (42, "text must be a string or a list of strings, got int"),
        ({"a": 1}, "text must be a string or a list of strings, got dict"),
        ({TEXT}, "text must be a string or a list of strings, got set"),
        (b"hi", "text is bytes; decode it first"),
        ([TEXT, b"hi"], "text #1 is bytes; decode it first"),
        ("a\ud800b", "not valid Unicode: a lone surrogate"),
        ("\x00\x01\u200b", "no tokens besides the special ones"),
    ],
)
def test_explain_text_type(tiny_bert, text, match):
    model, tok = tiny_bert
    with pytest.raises(InputError, match=match):
        gaflow.explain(model, tok, text)


# ------------------------------------------------- outputs: one rule for explain and solve_flow

BAD_OUTPUTS = [
    (["a"], "outputs must be integer token positions, got 'a'"),
    (3, r"outputs must be a list of token positions, got the number 3; write \[3\]"),
    ([1.7], "outputs must be integer token positions, got 1.7"),
    ([1.0], "outputs must be integer token positions, got 1.0"),
    ([True], "outputs must be integer token positions, got True"),
    ([np.float64(1)], "outputs must be integer token positions"),
    ([], "at least one token position"),
    (np.array([[0]]), "1-D"),
]


@pytest.mark.parametrize("outputs, match", BAD_OUTPUTS)
def test_outputs_one_rule_for_explain_and_solve_flow(tiny_bert, outputs, match):
    model, tok = tiny_bert
    with pytest.raises(InputError, match=match) as from_explain:
        gaflow.explain(model, tok, TEXT, outputs=outputs)
    with pytest.raises(InputError, match=match) as from_solver:
        gaflow.solve_flow(np.random.default_rng(0).random((2, 4, 4)), outputs=outputs)
    assert str(from_explain.value) == str(from_solver.value)


def test_outputs_out_of_range_and_integer_forms(tiny_bert):
    model, tok = tiny_bert
    with pytest.raises(InputError, match="output position 10 is out of range for 10 tokens"):
        gaflow.explain(model, tok, TEXT, outputs=[10])  # [CLS] + 8 words + [SEP]
    with pytest.raises(InputError, match="output position 4 is out of range for 4 tokens"):
        gaflow.solve_flow(np.ones((2, 4, 4)), outputs=[4])
    ref = gaflow.explain(model, tok, TEXT, outputs=[0, 2])
    for same in ((0, 2), np.array([0, 2]), [np.int64(0), 2], [0, -8]):
        exp = gaflow.explain(model, tok, TEXT, outputs=same)
        np.testing.assert_array_equal(exp.scores, ref.scores)
    assert ref.config["outputs"] == [0, 2]
    with pytest.raises(InputError, match=r"outputs\[0\] must be a list of token positions"):
        gaflow.solve_flow([np.ones((2, 3, 3)), np.ones((2, 3, 3))], outputs=[0, 1])


# ---------------------------------------------------------------------------- max_length


@pytest.mark.parametrize(
    "max_length, match",
    [
        (-5, "max_length must be a positive integer or None, got -5"),
        (0, "max_length must be a positive integer or None, got 0"),
        (True, "max_length must be a positive integer or None, got True"),
        (3.0, "max_length must be a positive integer or None, got 3.0"),
        (1, "max_length=1 leaves no room for text: the tokenizer adds 2 special tokens"),
        (2, "max_length=2 leaves no room for text"),
    ],
)
def test_max_length_rejected(tiny_bert, max_length, match):
    model, tok = tiny_bert
    with pytest.raises(InputError, match=match):
        gaflow.explain(model, tok, TEXT, max_length=max_length, truncation=True)


def test_max_length_truncates_for_real(tiny_bert):
    model, tok = tiny_bert
    exp = gaflow.explain(model, tok, TEXT, max_length=3, truncation=True)
    assert exp.tokens == ["[CLS]", "the", "[SEP]"] and exp.config["truncated"]
    assert exp.scores.sum() == pytest.approx(exp.flow_value, rel=1e-9)
    exp = gaflow.explain(model, tok, TEXT, max_length=10, truncation=True)  # exactly fits
    assert len(exp.tokens) == 10 and not exp.config["truncated"]
    exp = gaflow.explain(model, tok, TEXT, max_length=9, truncation=True)
    assert len(exp.tokens) == 9 and exp.config["truncated"] and exp.tokens[-1] == "[SEP]"
    with pytest.raises(InputError, match="truncation=True"):
        gaflow.explain(model, tok, TEXT, max_length=5)
    long = " ".join(["movie"] * 80)  # 82 tokens; the model takes 64
    with pytest.raises(InputError, match="more than the model's maximum of 64"):
        gaflow.explain(model, tok, long, max_length=512)
    exp = gaflow.explain(model, tok, long, max_length=512, truncation=True)
    assert len(exp.tokens) == 64 and exp.config["truncated"]


# ------------------------------------------------------------- numbers, backend and device


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(mu=True), "mu must be a positive finite number or None, got True"),
        (dict(mu="0.1"), "mu must be a positive finite number"),
        (dict(mu=float("nan")), "mu must be a positive finite number"),
        (dict(batch_size=True), "batch_size must be a positive integer, got True"),
        (dict(batch_size=2.0), "batch_size must be a positive integer, got 2.0"),
        (dict(rtol=True), r"rtol must be a number in \(0, 1\), got True"),
        (dict(backend="torch", device="bogus"), "unknown device 'bogus'"),
        (dict(backend="torch", device="meta"), "not on a device of type 'meta'"),
        (dict(backend="torch", device=3), "device must be a string"),
        (dict(backend="numpy", device="cpu"), "device applies to backend='torch' only"),
        (dict(backend=["torch"]), "unknown backend"),
        (dict(keep_flows="no"), "keep_flows must be True or False, got 'no'"),
    ],
)
def test_bad_numbers_and_devices(tiny_bert, kwargs, match):
    model, tok = tiny_bert
    with pytest.raises(InputError, match=match):  # the solver's options: a central flow
        gaflow.explain(model, tok, TEXT, method="agf", **kwargs)
    solver_kwargs = {k: v for k, v in kwargs.items() if k != "batch_size"}
    if solver_kwargs:
        with pytest.raises(InputError, match=match):
            gaflow.solve_flow(np.ones((2, 3, 3)), **solver_kwargs)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message without CUDA")
def test_cuda_index_without_cuda():
    with pytest.raises(InputError, match="no CUDA device"):
        gaflow.solve_flow(np.ones((2, 3, 3)), backend="torch", device="cuda:1")


def test_numpy_scalars_are_numbers(tiny_bert):
    model, tok = tiny_bert
    a = gaflow.explain(model, tok, TEXT, method="agf", mu=np.float32(0.1),
                       batch_size=np.int64(4))
    b = gaflow.explain(model, tok, TEXT, method="agf", mu=float(np.float32(0.1)))
    np.testing.assert_array_equal(a.scores, b.scores)
    caps = np.random.default_rng(1).random((2, 4, 4))
    assert gaflow.solve_flow(caps, mu=np.float64(0.05)).value == gaflow.solve_flow(
        caps, mu=0.05).value


@pytest.mark.parametrize(
    "caps",
    [
        np.ones((2, 3, 3)) + 0.5j,
        torch.ones((2, 3, 3), dtype=torch.complex64),
        [np.ones((2, 3, 3)), np.ones((2, 3, 3), dtype=np.complex128)],
        [[[1 + 0j, 1], [1, 1]]],
    ],
)
def test_complex_capacities_rejected(caps):
    with pytest.raises(InputError, match="must be real numbers"):
        gaflow.solve_flow(caps)


# ------------------------------------------------------------ typed special-token strings


def test_typed_special_tokens_are_plain_text(tiny_bert):
    """'[SEP]' or '[PAD]' typed by the user is text: it is tokenised as characters, and only
    the tokenizer's own [CLS] and [SEP] are special."""
    model, tok = tiny_bert
    exp = gaflow.explain(model, tok, "the [SEP] dog [PAD] is [CLS] smart")
    assert exp.special.sum() == 2 and exp.special[0] and exp.special[-1]
    control = {tok.cls_token_id, tok.sep_token_id, tok.pad_token_id}
    inner = tok.convert_tokens_to_ids(exp.tokens[1:-1])
    assert not control & set(inner)
    words = [w for w, _ in exp.words()]
    assert words.count("[") == 3 and words.count("]") == 3 and "smart" in words
    assert exp.scores.sum() == pytest.approx(exp.flow_value, rel=1e-9)


class Ignoring:
    """A tokenizer that ignores some keyword options (as older or custom tokenizers do)."""

    def __init__(self, inner, *ignored: str):
        self.inner, self.ignored = inner, ignored

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def __call__(self, *args, **kwargs):
        for key in self.ignored:
            kwargs.pop(key, None)
        return self.inner(*args, **kwargs)


def test_typed_special_tokens_flagged_when_tokenizer_cannot_split(tiny_bert):
    """With a tokenizer that ignores split_special_tokens (older transformers), the typed
    [SEP] becomes a real separator: it is flagged special, never reported as a word."""
    model, tok = tiny_bert
    exp = gaflow.explain(model, Ignoring(tok, "split_special_tokens"), "the [SEP] dog")
    assert exp.tokens == ["[CLS]", "the", "[SEP]", "dog", "[SEP]"]
    assert exp.special.tolist() == [True, False, True, False, True]
    assert [w for w, _ in exp.words()] == ["the", "dog"]


def test_target_rule(tiny_bert):
    model, tok = tiny_bert
    for same in ("positive", "POSITIVE", " Positive ", 1, "1", np.int64(1)):
        assert gaflow.explain(model, tok, TEXT, target=same).target == 1
    with pytest.raises(UnknownNameError, match="unknown target label 'neutral'"):
        gaflow.explain(model, tok, TEXT, target="neutral")
    for bad in (2, "-1", True):
        with pytest.raises(InputError, match="out of range|class index or label"):
            gaflow.explain(model, tok, TEXT, target=bad)


# --------------------------------------------------------------------------------- the CLI


@pytest.fixture(scope="module")
def model_dir(tiny_bert, tmp_path_factory):
    return saved_model(tiny_bert, tmp_path_factory.mktemp("cli") / "m")


def _cli_error(capsys, argv: list[str], match: str) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1]
    assert last.startswith("gaflow: error: ") and match in last, err
    assert "Traceback" not in err
    return err


@pytest.mark.parametrize(
    "output, match",
    [("nodir/x.json", "the folder nodir does not exist"), (".", ". is a folder; give a file name")],
)
def test_cli_output_path_checked_before_computing(capsys, monkeypatch, tmp_path, model_dir,
                                                  output, match):
    def no_work(*args, **kwargs):  # the model must not even be loaded
        raise AssertionError("the output path was not checked first")

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(gaflow, "load_model", no_work)
    _cli_error(capsys, ["explain", "good movie", "--model", str(model_dir), "--format", "json",
                        "-o", output], match)
    _cli_error(capsys, ["explain", "good movie", "--generate", "-o", output], match)


def test_cli_model_paths(capsys, tmp_path):
    (tmp_path / "m").mkdir()
    _cli_error(capsys, ["explain", "good movie", "--model", str(tmp_path / "m")],
               "holds no config.json")
    _cli_error(capsys, ["explain", "good movie", "--model", str(tmp_path / "nope")],
               f"model path '{tmp_path / 'nope'}' does not exist")
    _cli_error(capsys, ["explain", "good movie", "--model", "./nope"],
               "model path './nope' does not exist")
    (tmp_path / "f.bin").write_bytes(b"x")
    _cli_error(capsys, ["explain", "good movie", "--model", str(tmp_path / "f.bin")], "is a file")


def test_cli_bad_device_and_mu(capsys, model_dir):
    _cli_error(capsys, ["explain", "good movie", "--model", str(model_dir), "--backend", "torch",
                        "--device", "bogus"], "unknown device 'bogus'")
    _cli_error(capsys, ["explain", "good movie", "--model", str(model_dir), "--mu", "nan"],
               "mu must be a positive finite number")
    _cli_error(capsys, ["explain", "\x00", "--model", str(model_dir)], "no tokens besides")


# ------------------------------------------------------------------------------ fuzzing

SPECIAL_STRINGS = ["[SEP]", "[PAD]", "[CLS]", "[MASK]", "[UNK]", "<s>", "</s>", "\x00", "\n",
                   "\t", "\u200b", "\ufeff", "\ud800", "\x7f", "\u0301", " ", "dog", "smart"]
PIECES = st.one_of(
    st.text(st.characters(exclude_categories=()), max_size=8),  # every category, controls too
    st.sampled_from(SPECIAL_STRINGS),
)


@settings(max_examples=30, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(pieces=st.lists(PIECES, max_size=6), method=st.sampled_from(["agf", "af"]))
def test_fuzz_explain_text(tiny_bert, pieces, method):
    """Any unicode text: a result whose scores sum to the flow value, or a gaflow error."""
    model, tok = tiny_bert
    text = "".join(pieces)
    try:
        exp = gaflow.explain(model, tok, text, method=method, truncation=True)
    except GaflowError:
        return
    assert np.isfinite(exp.scores).all() and len(exp.scores) == len(exp.tokens)
    assert exp.scores.sum() == pytest.approx(exp.flow_value, rel=1e-8, abs=1e-12)
    assert exp.special.sum() == 2 and not exp.special[1:-1].any()
    exp.words()


def test_cli_model_that_cannot_load(capsys, monkeypatch, tmp_path):
    import transformers

    monkeypatch.chdir(tmp_path)
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "config.json").write_text("{}")  # transformers: ValueError
    _cli_error(capsys, ["explain", "good movie", "--model", "broken"],
               "could not load model 'broken': the folder 'broken' could not be read as a model")

    def offline(*args, **kwargs):
        raise OSError("We couldn't connect to 'https://huggingface.co'")

    monkeypatch.setattr(transformers.AutoModelForSequenceClassification, "from_pretrained",
                        offline)
    _cli_error(capsys, ["explain", "good movie", "--model", "nope-model"],
               "could not load model 'nope-model': it is not a zoo name (minilm-sst2")


def test_cli_serve_options(capsys):
    _cli_error(capsys, ["serve", "--queue", "-1"], "--queue must be >= 0")
    _cli_error(capsys, ["serve", "--timeout", "0"], "--timeout a positive number")


def test_text_iterables_are_batches(tiny_bert):
    model, tok = tiny_bert
    ref = gaflow.explain(model, tok, [TEXT, "the dog"])
    for same in ((TEXT, "the dog"), (t for t in [TEXT, "the dog"]), np.array([TEXT, "the dog"])):
        got = gaflow.explain(model, tok, same)
        assert [e.text for e in got] == [TEXT, "the dog"]
        np.testing.assert_array_equal(got[1].scores, ref[1].scores)


def test_tokenizer_that_does_not_cut_is_an_error(tiny_bert):
    """If a tokenizer ignores max_length, explain says so instead of reporting a cut it did
    not make."""
    model, tok = tiny_bert
    with pytest.raises(gaflow.ModelError, match="the tokenizer kept 10 tokens although "
                       "max_length is 5"):
        gaflow.explain(model, Ignoring(tok, "truncation", "max_length"), TEXT, max_length=5,
                       truncation=True)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(method=["agf"]), r"method must be a name \(a string\), got \['agf'\]"),
        (dict(truncation="False"), "truncation must be True or False, got 'False'"),
        (dict(target=[1]), "target must be a class index or label name"),
    ],
)
def test_option_types(tiny_bert, kwargs, match):
    model, tok = tiny_bert
    with pytest.raises(InputError, match=match):
        gaflow.explain(model, tok, TEXT, **kwargs)
