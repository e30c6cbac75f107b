"""Dates in questions and in what was said (soulctl/search/dates.py)."""

import datetime as dt

import pytest

from soulctl.search.dates import Span, in_span, mentioned, query_span, windows

WED = dt.date(2026, 5, 13)  # a Wednesday


@pytest.mark.parametrize("question, span", [
    ("What did we buy on 14 June?", Span(6, 14)),
    ("How far did Ines run on June 14th?", Span(6, 14)),
    ("Whose wedding is on the 3rd of October?", Span(10, 3)),
    ("Where did we travel during May?", Span(5)),
    ("What happened in Sept 2025?", Span(9, None, 2025)),
    ("What happened on 2026-05-14?", Span(5, 14, 2026)),
    ("May I ask about the dog?", None),  # the verb, not the month
    ("What did we buy on 31 February?", None),  # no such day
    ("Tell me about the dog.", None),
])
def test_a_question_names_a_day_or_a_month(question, span):
    assert query_span(question) == span


@pytest.mark.parametrize("prose, days", [
    ("Yesterday I ran 5 km.", {dt.date(2026, 5, 12)}),
    ("We got back from Lisbon on Sunday.", {dt.date(2026, 5, 10)}),  # past: the Sunday before
    ("We're having dinner with Olek on Friday.", {dt.date(2026, 5, 15)}),  # ahead: the Friday after
    ("We bought a sofa last Saturday.", {dt.date(2026, 5, 9)}),
    ("Two days ago the boiler broke.", {dt.date(2026, 5, 11)}),
    ("Lena is getting married on the 3rd of July, and we're invited!", {dt.date(2026, 7, 3)}),
    ("See you tomorrow.", {dt.date(2026, 5, 14)}),
    ("It rained all afternoon.", set()),
])
def test_what_was_said_is_dated_against_when_it_was_said(prose, days):
    assert mentioned(prose, WED) == days


def test_a_packet_about_another_day_is_that_days():
    may = Span(5)
    assert in_span(may, "Yesterday I ran 5 km.", dt.date(2026, 5, 1)) == 0  # about 30 April
    assert in_span(Span(4, 30), "Yesterday I ran 5 km.", dt.date(2026, 5, 1)) == 2
    assert in_span(may, "It rained all afternoon.", dt.date(2026, 5, 1)) == 1  # written in May
    assert in_span(Span(6), "It rained all afternoon.", dt.date(2026, 5, 1)) == 0


def test_windows_cover_when_a_day_may_have_been_talked_about():
    (lo, hi), = windows(Span(6, 14), dt.date(2026, 1, 1), dt.date(2026, 12, 1))
    assert lo.date() <= dt.date(2026, 4, 10) and hi.date() >= dt.date(2026, 6, 20)  # planned ahead, told after
    assert len(windows(Span(6), dt.date(2024, 3, 1), dt.date(2026, 2, 1))) == 3  # no year: each year of the log
