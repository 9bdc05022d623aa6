"""The JSON round trip shared by Explanation and GenerationExplanation (result.JsonResult)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import gaflow
from gaflow.result import Explanation, GenerationExplanation

DATA = Path(__file__).parent / "data"


@pytest.mark.parametrize("cls, name", [(Explanation, "explanation_v1.json"),
                                       (GenerationExplanation, "generation_v1.json")])
def test_files_written_before_the_shared_round_trip_load(cls, name):
    """Written by the code before JsonResult (commit a85d4c3): they load, and write back the
    same document (same keys, same order, same values)."""
    text = (DATA / name).read_text()
    exp = cls.from_json(text)
    assert json.dumps(exp.to_dict(), indent=1) + "\n" == text
    assert cls.from_json(exp.to_json()) == exp
    assert isinstance(exp.scores, np.ndarray) and exp.scores.dtype == np.float64


def test_loaded_fields_have_their_types():
    e = Explanation.from_json((DATA / "explanation_v1.json").read_text())
    assert e.special.dtype == bool and all(isinstance(o, tuple) for o in e.offsets)
    assert e.flows is None and "flows" not in e.to_dict() and "kind" not in e.to_dict()
    g = GenerationExplanation.from_json((DATA / "generation_v1.json").read_text())
    assert g.scores.shape == (len(g.generated), len(g.tokens))
    np.testing.assert_allclose(g.scores.sum(1), g.flow_values, rtol=1e-9)


def test_round_trip_of_both_kinds(tiny_bert):
    model, tok = tiny_bert
    e = gaflow.explain(model, tok, "the dog is smart", method="agf", keep_flows=True)
    back = Explanation.from_json(e.to_json())
    assert back == e and back.flows.shape == e.flows.shape
    np.testing.assert_array_equal(back.flows, e.flows)
    g = GenerationExplanation(
        prompt="p", tokens=["a", "b", "c"], generated=["c"], scores=np.array([[0.25, 0.5, 0.0]]),
        flow_values=np.array([0.75]), n_source=0, n_prompt=2, architecture="decoder",
        method="agf", config={"mu": np.float64(0.5), "shape": (1, 3), "n": np.int64(3)},
    )
    doc = json.loads(g.to_json())
    assert list(doc)[:2] == ["format_version", "kind"] and doc["config"]["shape"] == [1, 3]
    again = GenerationExplanation.from_json(g.to_json())
    assert again == g and again.n_prompt == 2 and again.flow_values.dtype == np.float64
    assert again != e and (g == e) is False


def test_wrong_documents_are_refused():
    exp_doc = json.loads((DATA / "explanation_v1.json").read_text())
    gen_doc = json.loads((DATA / "generation_v1.json").read_text())
    with pytest.raises(ValueError, match="GenerationExplanation"):
        GenerationExplanation.from_dict(exp_doc)
    with pytest.raises(ValueError, match="kind 'generation'"):
        Explanation.from_dict(gen_doc)
    for cls, doc in ((Explanation, exp_doc), (GenerationExplanation, gen_doc)):
        with pytest.raises(ValueError, match="format_version 2"):
            cls.from_dict({**doc, "format_version": 2})
