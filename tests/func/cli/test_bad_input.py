"""Bad input is the user's to fix, never a crash: a clear one-line error, its documented exit
code (2 for a flag, 5 for data), and nothing written. Each class in more than one variant:
numbers that are not finite, values outside what the API accepts, plots without an image
format, configurations nested without end, text that is not text, inputs without end, buffers
that teach nothing."""

from __future__ import annotations

import json

import pytest

from conftest import refused, soulctl


@pytest.mark.parametrize("args", [
    ["log", "sql", "SELECT 1", "--timeout", "inf"], ["log", "sql", "SELECT 1", "--timeout", "nan"],
    ["chat", "--temperature", "nan", "hi"], ["chat", "--min-p", "-inf", "hi"],
    ["budget", "--gpu-share", "nan"], ["resonate", "clusters", "--threshold", "nan"],
    ["chat", "--top-p", "0", "hi"], ["chat", "--repeat-penalty", "0.5", "hi"], ["chat", "--seed", "-1", "hi"],
    ["gen", "diff", "gen-0000", "--seed", "-1"],
])
def test_a_flag_outside_its_range_is_a_usage_error(home, args):
    refused(soulctl("--home", home, *args), 2, "Invalid value")


@pytest.mark.parametrize("name", ["plot", "plot.txt", "plot.json"])
def test_a_plot_needs_an_image_format_before_any_work(home, tmp_path, name):
    refused(soulctl("--home", home, "anchor", "plot", tmp_path / name), 5, "image extension")
    refused(soulctl("--home", home, "resonate", "clusters", "--plot", tmp_path / name), 5, "image extension")
    assert not list(tmp_path.glob("*plot*"))


@pytest.mark.parametrize("nesting", ["[" * 5000 + "]" * 5000, "{a: " * 3000 + "1" + "}" * 3000])
def test_a_configuration_nested_without_end_is_refused(home, nesting):
    with open(home / "soul.yaml", "a") as fh:
        fh.write(f"\nextra: {nesting}\n")
    refused(soulctl("--home", home, "log", "ls"), 5, "nested too deeply")
    status = soulctl("--home", home, "--json", "status")
    assert status.code == 0 and "nested too deeply" in status.json()["log"]["error"], status


def test_a_recipe_over_its_size_limit_is_refused(home):
    (home / "recipes" / "dream.yaml").write_text("# " + "x" * (2 << 20) + "\n")
    refused(soulctl("--home", home, "evolve", "--dry-run"), 5, "over the limit")


@pytest.mark.parametrize("question", ['"caf\\ud800?"', '"a\\udfffb"'])
def test_a_lone_surrogate_in_a_question_names_its_line(home, tmp_path, question):
    questions = tmp_path / "q.jsonl"
    questions.write_text('{"question": "lighthouse", "evidence": []}\n'
                         f'{{"question": {question}, "evidence": []}}\n')
    refused(soulctl("--home", home, "log", "eval", questions), 5, "line 2")
    refused(soulctl("--home", home, "log", "search", "-", input=f'{{"query": {question}}}\n'), 5, "line 1")


@pytest.mark.parametrize("example, words", [
    ({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "  "}]}, "the reply is empty"),
    ({"messages": [{"role": "wizard", "content": "hi"}, {"role": "assistant", "content": "ok"}]}, "role 'wizard'"),
    ({"messages": [{"role": "user", "content": 5}, {"role": "assistant", "content": "ok"}]}, "string `content`"),
    ('{"messages": [{"role": "user", "content": "h\\udc00i"}, {"role": "assistant", "content": "ok"}]}', "surrogate"),
    ('{"messages": [{"role": "user", "content": "hi", "weight": NaN}, {"role": "assistant", "content": "ok"}]}',
     "not a finite number"),
])
def test_a_buffer_that_teaches_nothing_is_refused_before_training(home, tmp_path, example, words):
    buffer = tmp_path / "buffer.jsonl"
    good = {"messages": [{"role": "user", "content": "hello"}, {"role": "assistant", "content": "hello to you"}]}
    buffer.write_text(json.dumps(good) + "\n" + (example if isinstance(example, str) else json.dumps(example)) + "\n")
    refused(soulctl("--home", home, "dream", buffer), 5, f"buffer.jsonl:2: ")
    assert words in soulctl("--home", home, "dream", buffer).stderr
    assert not list((home / "data").glob("adapters/ad-*"))


@pytest.mark.parametrize("source", ["/dev/zero", "big"])
def test_a_prompts_file_without_end_is_read_in_bounded_memory(home, tmp_path, source):
    path = source
    if source == "big":
        path = tmp_path / "prompts.txt"
        path.write_text("what is a river?\n" * 200_000)  # 3.4 MB
    refused(soulctl("--home", home, "gen", "diff", "gen-0000", "gen-0000", "--behaviour", "--prompts", path,
                    timeout=120), 5, "over the limit of 1.0 MiB")


def test_a_budget_phase_blames_the_phase_that_does_not_fit(home):
    merge = soulctl("--home", home, "--json", "budget", "--phase", "merge", "--ram", "4GiB")
    night = merge.json()["phases"]["night"]["phases"]
    assert not any(side["fits"] for side in night["dream"].values()), "this budget must leave no room to dream"
    assert any(side["fits"] for side in night["merge"].values())
    assert merge.code == 0, merge  # the merge fits: the dream is another phase's problem
    refused(soulctl("--home", home, "budget", "--phase", "dream", "--ram", "4GiB"), 1, "the night's dream")
    refused(soulctl("--home", home, "budget", "--phase", "night", "--ram", "4GiB"), 1, "the night's dream")
    refused(soulctl("--home", home, "budget", "--phase", "merge", "--ram", "1GiB"), 1, "over budget")
