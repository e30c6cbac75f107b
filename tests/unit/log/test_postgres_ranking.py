"""The Postgres keyword half: a tsquery split into its top-level terms."""

from __future__ import annotations


def test_a_tsquery_splits_into_its_top_level_terms():
    from soulctl.log.postgres.ranking import conjuncts

    assert conjuncts("'heron' & 'marsh'") == ["'heron'", "'marsh'"]
    assert conjuncts("'a' <-> 'b' & !'c' & ( 'd' | 'e' )") == ["'a' <-> 'b'", "!'c'", "( 'd' | 'e' )"]
    assert conjuncts("'a' & 'b' | 'c'") == ["'a' & 'b' | 'c'"]  # OR binds looser: kept whole
    assert conjuncts("'at&t' & 'it''s'") == ["'at&t'", "'it''s'"]  # quoted lexemes stay whole


def test_a_question_matches_any_of_its_words():
    from soulctl.log.postgres.ranking import any_of

    assert any_of("'kind' & 'dog' & 'adopt'") == "( 'kind' | 'dog' | 'adopt' )"
    assert any_of("'a' <-> 'b' & 'c' & !'d'") == "( 'a' <-> 'b' | 'c' ) & !'d'"  # a phrase stays whole
    assert any_of("!'d'") == "!'d'"
