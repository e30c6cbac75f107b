"""A tool's arguments checked against its schema before it runs, whoever calls it (a model,
the REPL, an MCP client)."""

import pytest

from soulctl.tools import BadArguments, ToolContext, call, check_arguments


@pytest.mark.parametrize("name,args,param,words", [
    ("search_memory", {"query": 123}, "query", "`query` must be a string, not int 123"),
    ("search_memory", {"query": "x", "k": "many"}, "k", "`k` must be an integer"),
    ("search_memory", {"query": "x", "k": True}, "k", "`k` must be an integer, not bool"),
    ("search_memory", {}, "query", "search_memory needs `query`"),
    ("mark_resonance", {"id": "x", "score": "high"}, "score", "`score` must be a number"),
    ("read_notebook", {"which": "diary"}, "which", "must be one of notebook, self"),
    ("search_corpus", {"query": "x", "corpora": ["a", 1]}, "corpora", "must be a string"),
    ("add_to_log", {"text": "a\ud800"}, "text", "lone UTF-16 surrogate"),
    ("nosuch", {}, "name", "no tool 'nosuch'"),
])
def test_arguments_that_do_not_fit_name_the_argument(name, args, param, words):
    with pytest.raises(BadArguments) as err:
        check_arguments(name, args)
    assert err.value.param == param and words in err.value.message
    assert words in call(name, args, ToolContext(None))["error"]  # a model reads the same line


def test_numbers_may_be_integers_and_null_means_absent():
    assert check_arguments("mark_resonance", {"id": "x", "score": 1}) == {"id": "x", "score": 1}
    assert check_arguments("search_memory", {"query": "x", "k": None})["k"] is None
