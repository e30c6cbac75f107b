"""Every API request body is a pydantic model over one base: an unknown field is refused by name,
a wrong type or range names its field — the same error shape on every surface."""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path

import pytest

from soulctl.serve.errors import BadRequest
from soulctl.serve.openai import SURFACES
from soulctl.serve.openai.protocol import Body

MINIMAL = {"chat_completions": {"messages": [{"role": "user", "content": "hi"}]},
           "responses": {"input": "hi"}, "embeddings": {"input": "hi"}}


def request_model(surface: str):
    module = importlib.import_module(f"soulctl.serve.openai.{surface}.protocol")
    models = [m for _, m in inspect.getmembers(module, inspect.isclass) if issubclass(m, Body) and m is not Body
              and m.__module__ == module.__name__]
    assert len(models) == 1, f"{surface}/protocol.py declares one request model"
    return models[0]


def test_every_surface_that_takes_a_body_declares_its_model():
    package = Path(importlib.import_module("soulctl.serve.openai").__file__).parent
    for surface in SURFACES:
        routes = (package / surface / "routes.py").read_text()
        if "@router.post" in routes:
            assert (package / surface / "protocol.py").is_file(), surface
            assert request_model(surface).SURFACE
    assert set(MINIMAL) == {s for s in SURFACES if (package / s / "protocol.py").is_file()}


@pytest.mark.parametrize("surface", sorted(MINIMAL))
def test_an_unknown_field_is_refused_by_name(surface):
    model = request_model(surface)
    assert model.parse(MINIMAL[surface]).given() == MINIMAL[surface]
    with pytest.raises(BadRequest) as refused:
        model.parse({**MINIMAL[surface], "frobnicate": 1})
    assert refused.value.param == "frobnicate" and refused.value.code == "unknown_field"
    assert "not supported" in str(refused.value) and refused.value.status == 400


@pytest.mark.parametrize("surface", sorted(MINIMAL))
def test_a_field_of_the_wrong_type_names_itself(surface):
    model = request_model(surface)
    with pytest.raises(BadRequest) as refused:
        model.parse({**MINIMAL[surface], "model": 5})
    assert refused.value.param == "model" and "must be a string" in str(refused.value)


@pytest.mark.parametrize("surface", ["chat_completions", "responses"])
@pytest.mark.parametrize("field, value, words", [("temperature", 3, "from 0 to 2"), ("top_p", 0, "(0, 1]"),
                                                 ("seed", -1, "non-negative"), ("temperature", "hot", "a number"),
                                                 ("top_k", True, "an integer")])
def test_sampling_fields_hold_the_limits_every_source_shares(surface, field, value, words):
    with pytest.raises(BadRequest) as refused:
        request_model(surface).parse({**MINIMAL[surface], field: value})
    assert refused.value.param == field and words in str(refused.value)
