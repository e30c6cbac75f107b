"""An embedder that embeds questions and passages differently (e5's "query: " / "passage: "),
read from the model's own sentence-transformers configuration."""

import json
import shutil

import numpy as np

from soulctl.embed import Embedder, bundled_model_dir


def test_an_asymmetric_model_prefixes_queries_and_passages_and_says_so(tmp_path):
    plain = Embedder(bundled_model_dir(), runtime="numpy")
    assert not plain.asymmetric and plain.prompts == ("", "")
    model = tmp_path / "e5-like"
    shutil.copytree(bundled_model_dir(), model)
    config = json.loads((model / "config_sentence_transformers.json").read_text())
    (model / "config_sentence_transformers.json").write_text(
        json.dumps({**config, "prompts": {"query": "query: ", "passage": "passage: "}}))
    asym = Embedder(model, runtime="numpy")
    assert asym.asymmetric
    np.testing.assert_allclose(asym.encode_queries(["where is the key"]), plain.encode(["query: where is the key"]),
                               atol=1e-5)
    np.testing.assert_allclose(asym.encode(["the key is in the pot"]), plain.encode(["passage: the key is in the pot"]),
                               atol=1e-5)
    # the prompts are part of who made a vector: a store refuses the other model's vectors
    same_dir = Embedder(model, runtime="numpy").model_id
    (model / "config_sentence_transformers.json").write_text(json.dumps(config))
    assert Embedder(model, runtime="numpy").model_id != same_dir
    assert Embedder(bundled_model_dir()).model_id == plain.model_id
