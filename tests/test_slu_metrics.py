"""Label markup and SLU metrics: round trips, malformed outputs, SpeechBrain's ErrorRateStats, SLU-F1."""

import json
import random

import pytest
from speechbrain.utils.metric_stats import ErrorRateStats

from sense.slu.markup import LabelMarkup, check_spans, reference_pairs
from sense.slu.metrics import ConceptErrorStats, slu_f1

EXAMPLES = [
    ("wake me up at seven am tomorrow", [["time", 14, 22], ["date", 23, 31]]),
    ("play some jazz in the kitchen", [["genre", 10, 14], ["place", 22, 29]]),
    ("what is the weather", []),
]


@pytest.fixture(scope="module")
def markup():
    return LabelMarkup.build(EXAMPLES)


def test_encode_decode_round_trip(markup):
    for transcript, spans in EXAMPLES:
        text, pairs = markup.decode(markup.encode(transcript, spans))
        assert text == transcript
        assert pairs == [tuple(p) for p in reference_pairs(transcript, spans)]


def test_openers_are_per_type_and_closer_shared(markup):
    target = markup.encode(*EXAMPLES[0])
    assert target.count(markup.closer) == 2
    assert markup.openers["time"] != markup.openers["date"]
    assert set(markup.openers.values()).isdisjoint("".join(t for t, _ in EXAMPLES))


def test_markers_avoid_characters_of_the_transcripts():
    markup = LabelMarkup.build([("Ⓐ ⟩", [["x", 0, 1]])])
    assert markup.openers["x"] != "Ⓐ" and markup.closer != "⟩"


def test_malformed_outputs_never_fail(markup):
    o_time, o_date, close = markup.openers["time"], markup.openers["date"], markup.closer
    assert markup.decode(f"{close}at {o_time}seven") == ("at seven", [("time", "seven")])
    assert markup.decode(f"{o_time}seven {o_date}today{close}{close}") == (
        "seven today",
        [("time", "seven"), ("date", "today")],
    )
    assert markup.decode(f"{o_time}{close}") == ("", [("time", "")])
    assert markup.decode("") == ("", [])


def test_unseen_characters_and_labels(markup):
    ids = markup.to_ids(markup.encode("ßeven", [["time", 0, 5]]))
    assert ids[1] == markup.unknown_index  # ß was never seen
    assert markup.decode_ids(ids) == f"{markup.openers['time']}even{markup.closer}"
    target = markup.encode("at nine", [["unheard", 3, 7]])  # a label without opener
    assert markup.decode(target) == ("at nine", [])


def test_save_load(markup, tmp_path):
    markup.save(tmp_path / "m.json")
    assert LabelMarkup.load(tmp_path / "m.json") == markup
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(ValueError, match="bad.json"):
        LabelMarkup.load(tmp_path / "bad.json")


@pytest.mark.parametrize(
    "spans, problem",
    [
        ([["t", 0, 9]], "outside"),
        ([["t", 2, 4], ["u", 3, 5]], "overlaps"),
        ([["a b", 0, 1]], "word"),
    ],
)
def test_bad_spans(spans, problem):
    with pytest.raises(ValueError, match=problem):
        check_spans("abcdef", spans)


# -- NEER / COER / CVER against SpeechBrain ------------------------------------------------


def speechbrain_format(markup, annotated: str) -> list[str]:
    """SpeechBrain's MEDIA format: concept tags and closers as separate words."""
    out = []
    for c in annotated:
        if c in markup.labels:
            out.append(f" <{markup.labels[c]} ")
        elif c == markup.closer:
            out.append(" > ")
        else:
            out.append(c)
    return list(" ".join("".join(out).split()))


def speechbrain_rates(markup, refs, hyps):
    rates = {}
    for name, keep in (("COER", False), ("CVER", True)):
        stats = ErrorRateStats(
            space_token=" ", extract_concepts_values=True, keep_values=keep, tag_in="<", tag_out=">"
        )
        ids = [str(i) for i in range(len(refs))]
        stats.append(
            ids,
            [speechbrain_format(markup, h) for h in hyps],
            [speechbrain_format(markup, r) for r in refs],
        )
        rates[name] = stats.summarize("error_rate")
    return rates


def our_rates(markup, refs, hyps):
    stats = ConceptErrorStats()
    stats.append(
        [str(i) for i in range(len(refs))],
        [markup.decode(r)[1] for r in refs],
        [markup.decode(h)[1] for h in hyps],
    )
    summary = stats.summarize()
    return {"COER": summary["COER"], "CVER": summary["CVER"]}


def random_annotated(markup, rng) -> str:
    symbols = list("abc ") + list(markup.openers.values()) + [markup.closer]
    return "".join(rng.choice(symbols) for _ in range(rng.randint(0, 14)))


def test_error_rates_match_speechbrain_hand_made(markup):
    o = markup.openers
    c = markup.closer
    refs = [
        f"wake me at {o['time']}seven am{c} {o['date']}today{c}",
        f"play {o['genre']}jazz{c}",
        "what is the weather",
        f"in the {o['place']}kitchen{c}",
    ]
    hyps = [
        f"wake me at {o['time']}seven{c} {o['date']}today",  # value error, unclosed
        f"play {o['place']}jazz{c}{c}",  # label substitution, stray closer
        f"what {o['date']}is{c} the weather",  # insertion on a concept-free reference
        "in the kitchen",  # deletion
    ]
    ours = our_rates(markup, refs, hyps)
    assert ours == pytest.approx(speechbrain_rates(markup, refs, hyps))
    # 3 substitutions (genre/place, date on a concept-free reference, place deleted as
    # the empty token) over 4 reference labels (the concept-free reference counts none)
    assert ours["COER"] == pytest.approx(75.0)


def test_error_rates_match_speechbrain_random(markup):
    rng = random.Random(0)
    for _ in range(20):
        refs = [random_annotated(markup, rng) for _ in range(6)]
        hyps = [random_annotated(markup, rng) for _ in range(6)]
        assert our_rates(markup, refs, hyps) == pytest.approx(
            speechbrain_rates(markup, refs, hyps)
        ), json.dumps([refs, hyps], ensure_ascii=False)


def test_neer_is_the_label_error_rate():
    stats = ConceptErrorStats(label_metric="NEER")
    stats.append(["u"], [[("PER", "Ana"), ("LOC", "Oslo")]], [[("PER", "Anna")]])
    summary = stats.summarize()
    assert summary["NEER"] == 50.0 and summary["CVER"] == 100.0


# -- SLU-F1 -------------------------------------------------------------------------------


def test_slu_f1_hand_computed():
    gold = [[("time", "seven am"), ("date", "tomorrow")], [("place", "kitchen")]]
    pred = [[("time", "seven"), ("place", "home")], [("place", "kitchen")]]
    r = slu_f1(gold, pred)
    # word: time matched at WER 1/2 (tp 1, fp .5, fn .5); place predicted but not in the
    # first gold (fp 1); date missed (fn 1); kitchen exact (tp 1). tp 2, fp 1.5, fn 1.5.
    assert r["word_precision"] == pytest.approx(2 / 3.5)
    assert r["word_f1"] == pytest.approx(2 / 3.5)
    # char: "seven am" vs "seven": 3 edits over 8 characters.
    tp, fp = 2, 1 + 3 / 8  # fn = fp: precision = recall = F1
    assert r["char_f1"] == pytest.approx(tp / (tp + fp))
    # SLU-F1: the two confusion counts summed.
    stp, sfp = 4, 1.5 + 1 + 3 / 8
    assert r["slu_f1"] == pytest.approx(stp / (stp + sfp))


def test_slu_f1_matches_the_closest_value_of_a_label():
    gold = [[("time", "noon"), ("time", "seven am")]]
    r = slu_f1(gold, [[("time", "seven am")]])
    assert r["word_precision"] == 1.0 and r["word_recall"] == 0.5


def test_slu_f1_hypothesis_longer_than_its_reference():
    """SLURP's distances when the predicted value is longer than the gold one.

    SLURP's word distance is jiwer's WER (edits over the *reference* words, not
    capped at 1); its char distance is textdistance's normalised Levenshtein
    (edits over the *longer* string). Expected counts by hand:

    * ``"seven"`` -> ``"seven am"``: 1 word inserted over 1 reference word
      (word distance 1); 3 characters (" am") over 8 (char distance 3/8).
    * ``"noon"`` -> ``"twelve noon today"``: 2 words inserted over 1 (word
      distance 2); 13 characters inserted over 17 (char distance 13/17).
    """
    gold = [[("time", "seven")], [("time", "noon")]]
    pred = [[("time", "seven am")], [("time", "twelve noon today")]]
    r = slu_f1(gold, pred)
    word_d, char_d = 1.0 + 2.0, 3 / 8 + 13 / 17  # summed over the two matches
    # tp 2 each; each distance counts as fp and as fn: precision = recall = F1
    assert r["word_precision"] == pytest.approx(2 / (2 + word_d))
    assert r["word_f1"] == pytest.approx(2 / (2 + word_d))
    assert r["char_precision"] == pytest.approx(2 / (2 + char_d))
    assert r["char_recall"] == pytest.approx(2 / (2 + char_d))
    assert r["char_f1"] == pytest.approx(2 / (2 + char_d))
    assert r["slu_f1"] == pytest.approx(4 / (4 + word_d + char_d))
    # one utterance alone: Char-F1 = 1 / (1 + 3/8) = 8/11, SLU-F1 = 2 / (2 + 1 + 3/8) = 16/27
    single = slu_f1(gold[:1], pred[:1])
    assert single["char_f1"] == pytest.approx(8 / 11)
    assert single["slu_f1"] == pytest.approx(16 / 27)
    # the same pair the other way round (hypothesis shorter): the char distance is
    # symmetric, the word distance is not (1 deletion over 2 reference words)
    swapped = slu_f1(pred[:1], gold[:1])
    assert swapped["char_f1"] == pytest.approx(8 / 11)
    assert swapped["word_f1"] == pytest.approx(1 / 1.5)
