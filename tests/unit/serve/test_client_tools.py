"""A client's tools in both dialects: what is offered, what a request answers, and every bad
shape refused naming its field."""

from __future__ import annotations

import pytest

from soulctl.serve.errors import BadRequest
from soulctl.serve.openai.tools import chat_offer, chat_results, note, responses_offer, responses_results

FN = {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}


class Engine:
    def __init__(self, tools: bool):
        self.supports_tools, self.name = tools, "openai" if tools else "llamacpp"


def test_both_dialects_offer_the_same_functions():
    chat = chat_offer({"tools": [FN, {"type": "web_search"}], "tool_choice": {"type": "function",
                                                                              "function": {"name": "get_weather"}}})
    flat = responses_offer({"tools": [{"type": "function", "name": "get_weather", "parameters": {"type": "object"}},
                                      {"type": "web_search"}], "tool_choice": {"type": "function", "name": "get_weather"}})
    for offer in (chat, flat):
        assert offer.client.functions == [FN] and offer.client.choice == "get_weather"
        assert offer.client.first_choice() == {"type": "function", "function": {"name": "get_weather"}}
        assert note(offer, Engine(True)) == {"count": 2, "offered": True, "names": ["get_weather"],
                                             "not_offered": [{"type": "web_search",
                                                              "why": "only function tools can be offered"}]}
        assert note(offer, Engine(False))["offered"] is False
    assert note(chat_offer({}), Engine(True)) is None
    assert note(chat_offer({"tools": [FN], "tool_choice": "none"}), Engine(True))["why"].startswith("tool_choice is none")


@pytest.mark.parametrize("body,param", [
    ({"tools": "get_weather"}, "tools"),
    ({"tools": [{"type": "function", "function": {"name": "get weather"}}]}, "tools[0].function.name"),
    ({"tools": [{"type": "function", "function": {"name": "search_memory"}}]}, "tools[0].function.name"),
    ({"tools": [{"type": "function", "function": {"name": "f", "parameters": "x"}}]}, "tools[0].function.parameters"),
    ({"tools": [FN, FN]}, "tools"),
    ({"tools": [FN], "tool_choice": {"type": "function", "function": {"name": "other"}}}, "tool_choice"),
    ({"tool_choice": "required"}, "tool_choice"),
    ({"functions": [FN["function"]]}, "functions"),
])
def test_bad_tools_are_refused_by_name(body, param):
    with pytest.raises(BadRequest) as caught:
        chat_offer(body)
    assert caught.value.param == param


def test_results_are_the_trailing_answers_to_an_assistants_calls():
    call = {"role": "assistant", "tool_calls": [{"id": "call_1", "type": "function"}]}
    user = {"role": "user", "content": "Weather?"}
    assert chat_results([user, call, {"role": "tool", "tool_call_id": "call_1", "content": "Sunny"}]) == \
        {"call_1": "Sunny"}
    assert chat_results([user, call, {"role": "tool", "tool_call_id": "call_1", "content": "x"}, user]) == {}
    with pytest.raises(BadRequest) as caught:
        chat_results([user, {"role": "tool", "tool_call_id": "call_1", "content": "x"}])
    assert caught.value.param == "messages"
    with pytest.raises(BadRequest) as caught:
        chat_results([user, call, {"role": "tool", "content": "x"}])
    assert caught.value.param == "messages[2].tool_call_id"
    items = [{"role": "user", "content": "Weather?"}, {"type": "function_call", "call_id": "c1"},
             {"type": "function_call_output", "call_id": "c1", "output": [{"type": "input_text", "text": "Rain"}]}]
    assert responses_results(items) == {"c1": "Rain"}
    assert responses_results(items + [{"role": "user", "content": "and tomorrow?"}]) == {}
    assert responses_results("just text") == {}
