"""espeak-ng through ctypes, each synthesis from the same pristine engine state.

espeak-ng's wave generator keeps state from one utterance to the next that no
API call resets, not even ``espeak_Terminate`` + ``espeak_Initialize``: the
phase of the pitch flutter (``Flutter_ix``, a function-static of
``AdvanceParameters`` in wavegen.c, which only wraps around), the harmonic
spectrum double buffer it alternates between (``hswitch``), the wave phase and
the resonators.  So one process that reads a sentence twice gets two different
waveforms, and a test's audio changed with whatever other tests had
synthesized before it in the same worker.  ``espeak_Initialize`` moreover seeds
the noise generator (breathy and Klatt voices) with ``time(NULL)``.

This module is therefore run as a small separate process (stdlib only, no
numpy or torch: ``python espeak_worker.py LIBRARY DATA``) that loads and
initialises the library once and never synthesizes itself; for each request it
forks a child, which seeds the noise generators, sets the voice and
parameters, synthesizes and reports back, then exits.  Every utterance thus
starts from the state right after ``espeak_Initialize``: the same request gives
the same samples, byte for byte, whatever came before.

Protocol, pickles on stdin/stdout: the worker first writes ``("ready",
sample_rate)`` or ``("error", message)``; then each request ``(text, voice,
rate, pitch, pitch_range)`` is answered by ``("ok", int16 samples as bytes,
[(char position, length, sample), ...])`` or ``("error", kind, message)``.
EOF on stdin ends the worker.
"""

from __future__ import annotations

import ctypes
import os
import pickle
import signal
import sys

# espeak_lib.h
AUDIO_OUTPUT_SYNCHRONOUS = 0x02
INITIALIZE_DONT_EXIT = 0x8000
POS_CHARACTER = 1
CHARS_UTF8 = 1
EVENT_LIST_TERMINATED = 0
EVENT_WORD = 1
PARAM_RATE = 1
PARAM_PITCH = 3
PARAM_RANGE = 4
EE_OK = 0
NOISE_SEED = 0
"""Seed of espeak-ng's noise generator (and libc's, used by its speechPlayer) in every synthesis."""


class EspeakEvent(ctypes.Structure):
    """``espeak_EVENT`` of speak_lib.h."""

    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),  # 1-based, in characters
        ("length", ctypes.c_int),  # in characters
        ("audio_position", ctypes.c_int),  # ms
        ("sample", ctypes.c_int),  # sample index
        ("user_data", ctypes.c_void_p),
        ("id", ctypes.c_char * 8),  # union {int number; const char *name; char string[8]}
    ]


SynthCallback = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(EspeakEvent)
)


class Engine:
    """The library, initialised, with a callback collecting samples and word events."""

    def __init__(self, library_path: str, data_path: str):
        self.chunks: list[bytes] = []
        self.word_events: list[tuple[int, int, int]] = []
        try:
            lib = ctypes.CDLL(library_path)
        except OSError as error:
            raise RuntimeError(f"cannot load espeak-ng from {library_path}: {error}") from error
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_SetSynthCallback.argtypes = [SynthCallback]
        lib.espeak_SetSynthCallback.restype = None
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetVoiceByName.restype = ctypes.c_int
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_SetParameter.restype = ctypes.c_int
        lib.espeak_Synth.argtypes = [
            ctypes.c_char_p,
            ctypes.c_size_t,
            ctypes.c_uint,
            ctypes.c_int,
            ctypes.c_uint,
            ctypes.c_uint,
            ctypes.c_void_p,
            ctypes.c_void_p,
        ]
        lib.espeak_Synth.restype = ctypes.c_int
        self.sample_rate = lib.espeak_Initialize(
            AUDIO_OUTPUT_SYNCHRONOUS, 0, data_path.encode(), INITIALIZE_DONT_EXIT
        )
        self.callback = SynthCallback(self._on_audio)  # kept alive with the engine
        lib.espeak_SetSynthCallback(self.callback)
        self.lib = lib

    def _on_audio(self, wav, n_samples, events) -> int:
        if n_samples > 0:
            self.chunks.append(ctypes.string_at(wav, 2 * n_samples))
        i = 0
        while events[i].type != EVENT_LIST_TERMINATED:
            event = events[i]
            if event.type == EVENT_WORD:
                self.word_events.append((event.text_position, event.length, event.sample))
            i += 1
        return 0  # continue

    def seed_noise(self) -> None:
        """Seed the noise generators (espeak_Initialize seeds espeak-ng's with the time)."""
        try:
            set_seed = self.lib.espeak_ng_SetRandSeed  # espeak-ng >= 1.52
        except AttributeError:
            pass
        else:
            set_seed.argtypes = [ctypes.c_long]
            set_seed(NOISE_SEED)
        try:
            ctypes.CDLL(None).srand(NOISE_SEED)
        except (AttributeError, OSError, TypeError):  # no libc handle (Windows)
            pass

    def run(self, text: str, voice: str, rate: int, pitch: int, pitch_range: int) -> tuple:
        """Synthesize in this process; the answer tuple of the protocol."""
        self.chunks, self.word_events = [], []
        self.seed_noise()
        status = self.lib.espeak_SetVoiceByName(voice.encode())
        if status != EE_OK:
            return (
                "error",
                "voice",
                f"espeak-ng has no voice {voice!r} (espeak_SetVoiceByName error {status})",
            )
        for parameter, value in (
            (PARAM_RATE, rate),
            (PARAM_PITCH, pitch),
            (PARAM_RANGE, pitch_range),
        ):
            self.lib.espeak_SetParameter(parameter, value, 0)
        data = text.encode("utf-8")
        status = self.lib.espeak_Synth(
            data, len(data) + 1, 0, POS_CHARACTER, 0, CHARS_UTF8, None, None
        )
        if status != EE_OK:
            return ("error", "synth", f"espeak_Synth failed (error {status}) on {text!r}")
        return ("ok", b"".join(self.chunks), list(self.word_events))


def _run_in_child(engine: Engine, request: tuple) -> bytes:
    """Run one request in a forked child; return its pickled answer."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: synthesize, answer, exit without cleanup
        status = 1
        try:
            os.close(read_end)
            try:
                answer = engine.run(*request)
            except Exception as error:  # noqa: BLE001 - reported to the parent
                answer = ("error", "synth", f"{type(error).__name__}: {error}")
            payload = pickle.dumps(answer, protocol=pickle.HIGHEST_PROTOCOL)
            view = memoryview(payload)
            while view:
                view = view[os.write(write_end, view) :]
            status = 0
        finally:
            os._exit(status)
    os.close(write_end)
    parts = []
    while True:
        part = os.read(read_end, 1 << 20)
        if not part:
            break
        parts.append(part)
    os.close(read_end)
    _, status = os.waitpid(pid, 0)
    if status != 0:
        return pickle.dumps(
            ("error", "crash", f"the espeak-ng child died (wait status {status}) on {request[0]!r}")
        )
    return b"".join(parts)


def serve(library_path: str, data_path: str, requests, answers) -> None:
    """The worker loop: initialise once, answer each request from a fresh fork."""
    try:
        engine = Engine(library_path, data_path)
    except Exception as error:  # noqa: BLE001 - reported to the parent
        pickle.dump(("error", f"{type(error).__name__}: {error}"), answers)
        answers.flush()
        return
    pickle.dump(("ready", engine.sample_rate), answers)
    answers.flush()
    can_fork = hasattr(os, "fork")
    while True:
        try:
            request = pickle.load(requests)
        except EOFError:
            return
        if can_fork:
            answers.write(_run_in_child(engine, request))
        else:  # no fork (Windows): the engine's state then carries over
            pickle.dump(engine.run(*request), answers, protocol=pickle.HIGHEST_PROTOCOL)
        answers.flush()


if __name__ == "__main__":
    # Ctrl-C reaches the whole process group: the parent decides; EOF ends the worker.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # The answers get their own copy of stdout; what the library prints goes to stderr.
    _answers = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    serve(sys.argv[1], sys.argv[2], sys.stdin.buffer, _answers)
