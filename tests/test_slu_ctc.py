"""Greedy CTC decoding: repeats merged only within a run, blanks dropped, frame spans kept."""

import itertools
import random

import pytest
import torch

from sense.slu.ctc import greedy_decode

VOCAB = 5


def scores(frames, vocab=VOCAB):
    """``[1, T, V]`` log-scores whose per-frame argmax is ``frames``."""
    out = torch.full((1, len(frames), vocab), -5.0)
    for t, symbol in enumerate(frames):
        out[0, t, symbol] = -0.1
    return out


def reference(frames, blank):
    """CTC's collapse by its definition: merge runs of equal symbols, then drop blanks."""
    ids, first, last, t = [], [], [], 0
    for symbol, run in itertools.groupby(frames):
        n = len(list(run))
        if symbol != blank:
            ids.append(symbol)
            first.append(t)
            last.append(t + n - 1)
        t += n
    return ids, first, last


@pytest.mark.parametrize(
    "frames, expected",
    [
        ([1, 0, 1], ([1, 1], [0, 2], [0, 2])),  # "a _ a" -> "aa"
        ([1, 1], ([1], [0], [1])),  # "a a" -> "a"
        ([0, 0, 2, 2, 0, 3, 0], ([2, 3], [2, 5], [3, 5])),  # blanks at both edges
        ([0, 0, 0], ([], [], [])),  # blanks only
        ([2, 0, 0, 2, 2, 1, 1, 0], ([2, 2, 1], [0, 3, 5], [0, 4, 6])),
        ([3, 4, 3, 4], ([3, 4, 3, 4], [0, 1, 2, 3], [0, 1, 2, 3])),  # no blank between changes
        ([4], ([4], [0], [0])),
    ],
    ids=["a_a", "aa", "edges", "blank-only", "mixed", "alternating", "one-frame"],
)
def test_greedy_decode_hand_made(frames, expected):
    (path,) = greedy_decode(scores(frames), torch.ones(1))
    assert (path.ids, path.first, path.last) == expected


def test_greedy_decode_other_blank_index():
    # with blank 3, the 0s are symbols: "0 _ 0" -> "00", and 3s split runs
    (path,) = greedy_decode(scores([0, 3, 0, 0, 3, 3, 2]), torch.ones(1), blank_index=3)
    assert (path.ids, path.first, path.last) == ([0, 0, 2], [0, 2, 6], [0, 3, 6])


def test_greedy_decode_stops_at_each_utterances_length():
    # a batch: the second utterance's 4 real frames (of 8) end inside a run
    rows = [[1, 1, 0, 2, 2, 0, 3, 3], [2, 0, 2, 2, 4, 4, 4, 1]]
    log_probs = torch.cat([scores(r) for r in rows])
    paths = greedy_decode(log_probs, torch.tensor([1.0, 0.5]))
    assert [tuple(p) for p in paths] == [
        ([1, 2, 3], [0, 3, 6], [1, 4, 7]),
        ([2, 2], [0, 2], [0, 3]),
    ]


def test_greedy_decode_matches_the_definition_on_random_paths():
    rng = random.Random(0)
    rows = [[rng.choice([0, 0, 1, 2, 2, 3]) for _ in range(12)] for _ in range(50)]
    paths = greedy_decode(torch.cat([scores(r) for r in rows]), torch.ones(len(rows)))
    for row, path in zip(rows, paths):
        assert tuple(path) == reference(row, blank=0), row


@pytest.fixture(scope="module")
def slu_export(tiny_w2v_bert, tmp_path_factory):
    """An exported SLU folder (tiny w2v-BERT, an untrained probe) and its markup."""
    from sense.lobes.speech import HFSpeechEncoder
    from sense.nnet.heads import CTCProbe
    from sense.slu.export import export_slu_model
    from sense.slu.markup import LabelMarkup

    encoder = HFSpeechEncoder(tiny_w2v_bert)
    markup = LabelMarkup.build([("at noon", [["time", 3, 7]])])
    probe = CTCProbe(encoder.output_dim, len(markup), hidden_dim=8)
    folder = str(tmp_path_factory.mktemp("slu") / "model")
    return export_slu_model(folder, encoder, probe, markup), markup


def test_slu_predictions_of_a_known_ctc_path(slu_export, monkeypatch):
    """The annotated text, transcript, spans and span times an SLU model gives for a CTC path.

    The probe is replaced by one whose best symbol per frame is fixed:
    ``_ _ a a t ␣ Ⓣ n o _ o o n n ⟩ _ ...`` (Ⓣ the time opener, ⟩ the closer):
    "at Ⓣnoon⟩", the span from the opener's first frame (6) to the end of the
    last "n"'s last frame (13), in frames of the utterance's duration over its
    frame count.
    """
    from sense.slu import SLU

    folder, markup = slu_export
    model = SLU.from_hparams(source=folder, device="cpu")
    opener, closer = markup.openers["time"], markup.closer
    blank = markup.blank_index
    path = [blank, blank, *markup.to_ids("aat "), *markup.to_ids(f"{opener}no")]
    path += [blank, *markup.to_ids(f"oonn{closer}")]

    def probe(frames):
        ids = path + [blank] * (frames.shape[1] - len(path))
        return scores(ids, len(markup)).expand(frames.shape[0], -1, -1)

    monkeypatch.setattr(model.mods.probe, "forward", probe)
    wavs, lens = torch.randn(2, 16000) * 0.1, torch.tensor([1.0, 0.5])
    frames, frame_lens = model.mods.encoder(wavs, lens)
    counts = [round(float(r) * frames.shape[1]) for r in frame_lens]
    results = model.predict_batch(wavs, lens)
    for result, duration, count in zip(results, (1.0, 0.5), counts):
        assert result.annotated == f"at {opener}noon{closer}"
        assert result.transcript == "at noon" and result.duration == pytest.approx(duration)
        (span,) = result.spans
        assert (span.label, span.value) == ("time", "noon")
        assert span.start == pytest.approx(6 * duration / count)
        assert span.end == pytest.approx(14 * duration / count)
