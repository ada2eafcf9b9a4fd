"""Translation-retrieval benchmarks (SENSE paper, section V-A).

A *query database* of utterances in language X and a *search database* of
their translations in language Y (speech or text): each query must find its
own translation. The benchmark recipes (``recipes/{VoxPopuli,MUSTC,mTEDx,
FLEURS}/retrieval``) share these modules, one job each:

- :mod:`~sense.evaluation.manifests`: prepared pairs (``query.json``,
  ``search.json``, ``dropped.tsv``), written and read back;
- :mod:`~sense.evaluation.encoders`: models as benchmark encoders (SENSE,
  SONAR, any class with the :class:`Encoder` methods);
- :mod:`~sense.evaluation.cache`: embeddings on disk under the encoder's identity;
- :mod:`~sense.evaluation.runner`: embedding, scoring, the results table;
- :mod:`~sense.evaluation.recipe`: a recipe's ``evaluate.py`` from its hparams.

Example
-------
>>> entry = text_entry("bonjour", "fr")  # a search entry of a prepared pair
>>> entry["modality"], len(item_key(entry)), build_encoder("sonar").name
('text', 40, 'SONAR')
"""

from sense.evaluation.cache import EmbeddingCache, item_key
from sense.evaluation.encoders import (
    SONAR_SPEECH_LANGS,
    SONAR_TEXT_LANGS,
    AudioItem,
    Encoder,
    SENSEEncoder,
    SONAREncoder,
    build_encoder,
    build_encoders,
    folder_fingerprint,
)
from sense.evaluation.manifests import (
    AUDIO,
    SEGMENT_END_TOLERANCE,
    TEXT,
    AudioChecker,
    PrepReport,
    audio_entry,
    load_pair,
    pair_is_prepared,
    parse_pair,
    read_json,
    read_tsv,
    text_entry,
    write_pair,
)
from sense.evaluation.recipe import prepare_present_pairs, run_as_script, run_recipe
from sense.evaluation.runner import CACHE_FLUSH_EVERY, embed_manifest, evaluate_pair, run_benchmark

__all__ = [
    "AUDIO",
    "CACHE_FLUSH_EVERY",
    "SEGMENT_END_TOLERANCE",
    "SONAR_SPEECH_LANGS",
    "SONAR_TEXT_LANGS",
    "TEXT",
    "AudioChecker",
    "AudioItem",
    "EmbeddingCache",
    "Encoder",
    "PrepReport",
    "SENSEEncoder",
    "SONAREncoder",
    "audio_entry",
    "build_encoder",
    "build_encoders",
    "embed_manifest",
    "evaluate_pair",
    "folder_fingerprint",
    "item_key",
    "load_pair",
    "pair_is_prepared",
    "parse_pair",
    "read_json",
    "read_tsv",
    "run_benchmark",
    "prepare_present_pairs",
    "run_as_script",
    "run_recipe",
    "text_entry",
    "write_pair",
]
