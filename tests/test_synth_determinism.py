"""espeak-ng's audio depends only on the request, not on what was synthesized before.

espeak-ng's wave generator carries state from one utterance to the next (the
pitch flutter's phase, the harmonic double buffer, ...) that no API call resets,
and ``espeak_Initialize`` seeds the breath noise with the clock; before
:mod:`sense.demo.espeak_worker`, a test's audio changed with the tests that had
synthesized before it in the same process, and a breathy variant's (f2, f3,
f5, ...) with the second the process started in.
"""

import hashlib
import subprocess
import sys
import time

import numpy as np
import pytest

pytest.importorskip("espeakng_loader")

SENTENCE = ("l'homme dans le parc", "fr")
OTHERS = [  # (text, lang, keywords): other languages, variants, speeds, pitches
    ("The woman in the garden.", "en", {}),
    ("Bonjour le monde, un deux trois.", "fr", {"variant": "f2"}),
    ("Die Kinder spielen im Park.", "de", {"variant": "m3", "rate": 200, "pitch": 70}),
    ("кошка спит в парке", "ru", {"pitch_range": 20}),
    ("Il gatto dorme.", "it", {"variant": "m7", "rate": 120}),
    ("El perro corre.", "es", {"variant": "f5"}),
]


def digest(out) -> str:
    return hashlib.sha256(np.ascontiguousarray(out.waveform).tobytes()).hexdigest()[:12]


@pytest.mark.parametrize(
    "keywords", [{"rate": 150, "pitch": 40}, {"variant": "m3"}, {"variant": "f5"}]
)
def test_same_request_same_bytes_whatever_came_before(keywords):
    from sense.demo.synth import EspeakSynthesizer

    tts = EspeakSynthesizer()
    readings = [tts.synthesize(*SENTENCE, **keywords), tts.synthesize(*SENTENCE, **keywords)]
    for text, lang, other in OTHERS:
        tts.synthesize(text, lang, **other)
        readings.append(tts.synthesize(*SENTENCE, **keywords))
    # a second synthesizer shares the process's engine: still the same audio
    readings.append(EspeakSynthesizer().synthesize(*SENTENCE, **keywords))
    digests = [digest(r) for r in readings]
    assert len(set(digests)) == 1, digests
    assert all(r.words == readings[0].words for r in readings)


READ_IN_A_FRESH_PROCESS = """
import hashlib
from sense.demo.synth import EspeakSynthesizer
out = EspeakSynthesizer().synthesize("Le vent souffle.", "fr", variant="f5")
print(hashlib.sha256(out.waveform.tobytes()).hexdigest()[:12])
"""


def test_breath_noise_does_not_depend_on_the_clock():
    """A breathy variant reads the same in a process started a second later."""
    digests = []
    for attempt in range(2):
        if attempt:
            time.sleep(1.1)  # espeak_Initialize seeds its noise with time(NULL)
        run = subprocess.run(
            [sys.executable, "-c", READ_IN_A_FRESH_PROCESS],
            capture_output=True,
            text=True,
            check=True,
            timeout=120,
        )
        digests.append(run.stdout.strip())
    assert digests[0] == digests[1], digests
