"""The Postgres keyword half: a tsquery split into its top-level terms."""

from __future__ import annotations


def test_a_tsquery_splits_into_its_top_level_terms():
    from soulctl.log.postgres.ranking import conjuncts

    assert conjuncts("'heron' & 'marsh'") == ["'heron'", "'marsh'"]
    assert conjuncts("'a' <-> 'b' & !'c' & ( 'd' | 'e' )") == ["'a' <-> 'b'", "!'c'", "( 'd' | 'e' )"]
    assert conjuncts("'a' & 'b' | 'c'") == ["'a' & 'b' | 'c'"]  # OR binds looser: kept whole
    assert conjuncts("'at&t' & 'it''s'") == ["'at&t'", "'it''s'"]  # quoted lexemes stay whole
