"""The SLU CTC probe leaves CTC's all-blank phase and learns from the audio, with no download.

SLUBrain fine-tunes a tiny random w2v-BERT 2.0 (32-d, one Conformer layer) and
the SENSE paper's CTC probe on 40 English sentences of the demo corpus with
their slots (person, object, number, place, time), synthesized with espeak-ng,
for 100 steps, and scores 16 held-out sentences.

Measured in two runs (one core, 49-53 s with the synthesis): held-out COER
154.8% / 160.3% at initialisation (random labels inserted everywhere) ->
50.7% / 52.1%; held-out CTC loss 6.06 -> 1.83 / 1.82 nats per symbol, below
the 3.15 nats of the training targets' symbol distribution (the cost of
guessing symbols by their frequency alone); CVER 184.9% / 193.2% -> 100.0%
(no slot value spelled exactly yet).

What this does not show: slot understanding beyond the grammar's prior.
Emitting the most frequent training label sequence for every utterance scores
a held-out COER of 9.6% on these sentences (the label order hardly varies), far
better than 100 steps reach. The test shows that the pipeline learns (markup,
CTC, decoding, scoring) and that the frames inform the output.

What gets CTC out of its all-blank phase in about a hundred steps: a wide probe
(256 units, no dropout) and Adam at 3e-3 on both the encoder and the probe. An
earlier setting (probe 64 units, 2e-3 / 3e-3, 60 steps) stayed all-blank, its
held-out COER going from 97.4% to 100%.
"""

import functools
import math
from collections import Counter

import pytest
import torch
from speechbrain.utils.epoch_loop import EpochCounter
from speechbrain.utils.train_logger import FileTrainLogger

from sense.demo.slu import prepare_demo_slu
from sense.lobes.speech import HFSpeechEncoder
from sense.nnet.heads import CTCProbe
from sense.slu.brain import HEAD, SLUBrain
from sense.slu.data import make_slu_datasets, markup_from_manifests, read_slu_manifest
from sense.testing.tiny import build_tiny_w2v_bert

pytestmark = pytest.mark.slow

SENTENCES, HELDOUT = 56, 16  # 40 training utterances
HIDDEN, LAYERS = 32, 1
PROBE_HIDDEN = 256
LR = 3e-3
BATCH, EPOCHS = 8, 20  # 100 optimizer steps
MAX_COER = 75.0  # emitting no label at all scores 100%; measured 50.7-52.1%
LOSS_MARGIN = 0.8  # measured 1.82-1.83 nats against 3.15


def symbol_entropy(markup, manifest: str) -> float:
    """Entropy (nats) of the annotated target symbols of a manifest."""
    counts = Counter(
        symbol
        for row in read_slu_manifest(manifest)
        for symbol in markup.encode(row["transcript"], row["spans"])
    )
    total = sum(counts.values())
    return -sum(n / total * math.log(n / total) for n in counts.values())


def test_the_ctc_probe_learns_heldout_slot_labels(tmp_path):
    torch.manual_seed(0)
    manifests = prepare_demo_slu(str(tmp_path / "data"), ["en"], SENTENCES, HELDOUT, dev=0)
    manifests = manifests["en"]
    markup = markup_from_manifests([manifests["train"]])
    data = make_slu_datasets({"train": manifests["train"], "test": manifests["test"]}, markup)
    encoder = HFSpeechEncoder(
        build_tiny_w2v_bert(
            str(tmp_path / "encoder"),
            hidden_size=HIDDEN,
            num_layers=LAYERS,
            intermediate_size=4 * HIDDEN,
        )
    )
    probe = CTCProbe(HIDDEN, len(markup), hidden_dim=PROBE_HIDDEN, dropout=0.0)
    counter = EpochCounter(EPOCHS)
    hparams = {
        "encoder_opt_class": functools.partial(torch.optim.Adam, lr=LR),
        "probe_opt_class": functools.partial(torch.optim.Adam, lr=LR),
        "epoch_counter": counter,
        "train_logger": FileTrainLogger(str(tmp_path / "train_log.txt")),
    }
    brain = SLUBrain(
        modules={"encoder": encoder, HEAD: probe},
        hparams=hparams,
        run_opts={"device": "cpu", "noprogressbar": True},
        markup=markup,
    )

    def heldout() -> dict:
        brain.evaluate(data["test"], test_loader_kwargs={"batch_size": HELDOUT})
        return brain.last_test["metrics"]

    before = heldout()
    brain.fit(counter, data["train"], train_loader_kwargs={"batch_size": BATCH, "shuffle": True})
    after = heldout()
    entropy = symbol_entropy(markup, manifests["train"])
    print(f"held-out before {before}, after {after}; target entropy {entropy:.2f} nats")
    assert after["COER"] <= MAX_COER, (before, after)
    assert after["COER"] <= before["COER"] / 2, (before, after)
    assert after["loss"] <= LOSS_MARGIN * entropy, (before, after, entropy)
