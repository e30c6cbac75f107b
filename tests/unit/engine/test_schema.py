"""A JSON schema a reply is held to is checked before a grammar is built from it."""

from __future__ import annotations

import pytest

from soulctl.engine.schema import MAX_ENUM, check_json_schema
from soulctl.errors import InvalidInput

GOOD = {"type": "object", "properties": {"bird": {"type": "string", "maxLength": 12},
                                         "where": {"$ref": "#/$defs/place"}},
        "$defs": {"place": {"type": ["string", "null"], "enum": ["mill", "pond", None]}}}


def test_a_schema_with_local_references_and_known_types_passes():
    assert check_json_schema(GOOD) is GOOD


@pytest.mark.parametrize("schema, words", [
    ({"$ref": "#/$defs/a", "$defs": {"a": {"type": "object", "properties": {"b": {"$ref": "#/$defs/a"}}}}},
     "refers to itself"),
    ({"$ref": "#/$defs/a", "$defs": {"a": {"$ref": "#/$defs/b"}, "b": {"$ref": "#/$defs/a"}}}, "refers to itself"),
    ({"type": "object", "properties": {"a": {"$ref": "#/$defs/missing"}}}, "names nothing"),
    ({"properties": {"a": {"$ref": "other.json#/x"}}}, "only local references"),
    ({"type": "decimal"}, "unknown type"),
    ({"type": ["string", "date"]}, "unknown type"),
    ({"type": "string", "enum": list(range(MAX_ENUM + 1))}, "enum values"),
    ({"type": "string", "description": "x" * 40_000}, "over the limit"),
])
def test_what_no_grammar_can_hold_is_refused_by_name(schema, words):
    with pytest.raises(InvalidInput, match=words):
        check_json_schema(schema)
