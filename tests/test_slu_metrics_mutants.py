"""Values of sense.slu.metrics that mutation testing (make mutation) found unpinned.

Every expected number is counted by hand in the test's docstring or comment.
"""

import pytest

from sense.slu.metrics import (
    ConceptErrorStats,
    char_distance,
    concept_tokens,
    f_measure,
    span_distance_counts,
    word_distance,
)


def test_summarize_counts_of_each_error_kind():
    """COER and CVER with their insertion / deletion / substitution / reference counts.

    utt1: ref time=seven am, date=today; hyp time=seven
      labels [time, date] vs [time]: 1 deletion; values: 1 substitution + 1 deletion.
    utt2: ref place=paris; hyp place=paris, time=noon
      labels and values: 1 insertion.
    3 reference tokens: COER = 2/3, CVER = 3/3.
    """
    stats = ConceptErrorStats(label_metric="NEER")
    stats.append(
        ["u1", "u2"],
        [[("time", "seven am"), ("date", "today")], [("place", "paris")]],
        [[("time", "seven")], [("place", "paris"), ("time", "noon")]],
    )
    s = stats.summarize()
    assert s["NEER"] == pytest.approx(200 / 3)
    assert (s["NEER_insertions"], s["NEER_deletions"], s["NEER_substitutions"]) == (1, 1, 0)
    assert s["NEER_num_ref_tokens"] == 3
    assert s["CVER"] == pytest.approx(100.0)
    assert (s["CVER_insertions"], s["CVER_deletions"], s["CVER_substitutions"]) == (1, 1, 1)
    assert s["CVER_num_ref_tokens"] == 3
    assert "COER" not in s


def test_a_concept_without_value_is_its_label_alone():
    """An empty value gives the label, not ``"label "`` (which would not match it)."""
    assert concept_tokens([("intent", ""), ("time", "noon")], keep_values=True) == [
        "intent",
        "time noon",
    ]


def test_distances_of_empty_strings():
    """Word distance against an empty reference is 1 if anything was said, else 0;
    the character distance of two empty strings is 0."""
    assert word_distance("", "a b") == 1.0
    assert word_distance("", "") == 0.0
    assert char_distance("", "") == 0.0
    assert char_distance("", "ab") == 1.0


def test_f_measure_is_zero_where_undefined():
    """No prediction and no reference: precision, recall and F1 are all 0 (not 1, no
    division by zero); a prediction without a reference likewise."""
    assert f_measure(0.0, 0.0, 0.0) == (0.0, 0.0, 0.0)
    assert f_measure(0.0, 2.0, 0.0) == (0.0, 0.0, 0.0)
    assert f_measure(0.0, 0.0, 2.0) == (0.0, 0.0, 0.0)


def test_span_counts_accumulate_over_every_predicted_span():
    """gold: time=seven am, date=today, place=paris
    pred: place=nice (unmatched label first: fp 1), time=seven (word distance 1/2),
    date=today (0): tp 2, fp 1 + 1/2, fn 1/2 + 1 (place=paris left over).
    With ``place`` a label of gold, ``nice`` matches it at distance 1 (fn +1, fp +1).
    """
    gold = [("time", "seven am"), ("date", "today"), ("place", "paris")]
    pred = [("music", "jazz"), ("time", "seven"), ("date", "today")]
    assert span_distance_counts(gold, pred, "word") == (2.0, 1.5, 1.5)
    pred = [("place", "nice"), ("time", "seven"), ("date", "today")]
    assert span_distance_counts(gold, pred, "word") == (3.0, 1.5, 1.5)
