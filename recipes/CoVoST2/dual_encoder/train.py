#!/usr/bin/env python3
"""Train an LLM speech-text dual encoder (seed 003) on speech with its transcripts.

1. prepare CoVoST 2 X -> EN with the speech-translation recipe's preparation
   (``recipes/CoVoST2/ST/covost_prepare.py``: its train/dev split lists over
   the Common Voice clips, 16 kHz FLAC, manifests ``ID, wav, language,
   transcript, translation, duration``, a report of every row left out);
2. fit k-means once on a sample of the speech encoder's middle-layer frames
   (``centroids.pt``) and tokenise every utterance once into a token cache;
3. train the LLM (its vocabulary extended by the audio tokens) and the
   projection contrastively, language-balanced batches, optional bitext mixing
   (the training rows' transcripts and their English translations);
4. export the best checkpoint for ``DualEncoder.from_hparams`` / ``sense search``.

One process::

    python train.py hparams/train.yaml --data_folder=/data/cv-corpus-4 \\
        --covost_folder=/data/covost_tsv --llm_source=google/gemma-2-2b \\
        --speech_source=facebook/w2v-bert-2.0

Several GPUs (prepare and tokenise once, then launch)::

    python train.py hparams/train.yaml --data_folder=... --prepare_only
    torchrun --nproc_per_node=8 train.py hparams/train.yaml --data_folder=... \\
        --skip_prep=True --precision=bf16
"""

import os
import sys

from speechbrain.utils.distributed import if_main_process, run_on_main

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "ST"))

from covost_prepare import prepare_covost  # noqa: E402

from sense.distill import make_train_loader  # noqa: E402
from sense.dual_encoder.brain import DualEncoderBrain, make_datasets  # noqa: E402
from sense.dual_encoder.tokens import TokenCache, fit_centroids, tokenize_files  # noqa: E402
from sense.finetune import open_experiment  # noqa: E402
from sense.preflight import materialize, require_files, run_main  # noqa: E402
from sense.prepare import manifest_data  # noqa: E402
from sense.samplers import BatchBudget  # noqa: E402

PREPARE_ONLY = "--prepare_only"
TEXT_KEY = "transcript"
TARGET = "en"


def bitext_pairs(rows) -> list[tuple[str, str, str]]:
    """``(x_text, x_lang, en_text)`` of prepared rows (their transcripts and translations).

    English rows (speech with its transcript, in manifests written with
    ``skip_prep``) have no translation pair: their translation is themselves.
    """
    rows = [row for row in rows if row["language"] != TARGET]
    return [(row["transcript"], row["language"], row["translation"]) for row in rows]


def load_manifests(paths: dict[str, str]) -> dict[str, dict[str, dict]]:
    return {split: manifest_data(path) for split, path in paths.items()}


def main(argv):
    prepare_only = PREPARE_ONLY in argv
    argv = [a for a in argv if a != PREPARE_ONLY]
    # The data first, from the hparams with no model built; --prepare_only then
    # loads the speech encoder (to tokenise) but never the LLM.
    experiment = open_experiment(argv)
    plan, run_opts = experiment.plan, experiment.run_opts
    if not plan["skip_prep"]:
        run_on_main(
            prepare_covost,
            kwargs={
                "data_folder": plan["data_folder"],
                "covost_folder": plan["covost_folder"],
                "save_folder": plan["prepared_folder"],
                "languages": plan["languages"],
                "splits": ["train", "dev"],
                "workers": plan["prepare_workers"],
                "min_duration": plan["min_duration"],
            },
        )
    require_files(plan, ["train_csv", "valid_csv"], "prepare them first (skip_prep: False)")
    manifests = load_manifests({"train": plan["train_csv"], "valid": plan["valid_csv"]})
    hparams = plan if prepare_only else experiment.load()
    tokenizer = materialize(hparams["audio_tokenizer"]).to(run_opts["device"])
    paths = [row["wav"] for rows in manifests.values() for row in rows.values()]
    train_paths = [row["wav"] for row in manifests["train"].values()]
    cache = TokenCache(hparams["token_cache_folder"])

    def fit_and_tokenise():
        fit_centroids(
            tokenizer,
            train_paths,
            hparams["centroids_file"],
            hparams["kmeans_frames"],
            sample_files=hparams["kmeans_files"],
            seed=hparams["seed"],
        )
        tokenize_files(tokenizer, paths, cache, batch_size=hparams["tokenize_batch_size"])

    run_on_main(fit_and_tokenise)  # once, on the main process; the other ranks read the results
    fit_centroids(tokenizer, train_paths, hparams["centroids_file"], hparams["kmeans_frames"])
    tokens = tokenize_files(tokenizer, paths, TokenCache(hparams["token_cache_folder"]))
    if prepare_only:
        if if_main_process():
            print(f"prepared {hparams['prepared_folder']}; {len(tokens)} utterances tokenised")
        return

    hparams_file = experiment.hparams_file
    datasets = make_datasets(manifests, tokens, hparams["llm"], text_key=TEXT_KEY)
    budget = BatchBudget.for_this_run(
        hparams["batch_seconds"],
        hparams["batch_seconds_scope"],
        hparams["grad_accumulation_factor"],
    )
    train_loader = make_train_loader(
        datasets["train"], budget, hparams["number_of_epochs"], **hparams["train_loader_options"]
    )
    brain = DualEncoderBrain(
        modules=hparams["modules"],
        hparams=hparams,
        run_opts=run_opts,
        checkpointer=hparams["checkpointer"],
    )
    if hparams["bitext_ratio"] > 0:
        brain.bitext = bitext_pairs(manifests["train"].values())
    brain.use_train_loader(train_loader)
    brain.fit(
        hparams["epoch_counter"],
        train_loader,
        datasets["valid"],
        valid_loader_kwargs={"batch_size": hparams["valid_batch_size"]},
    )
    brain.export(
        hparams["export_folder"],
        tokenizer,
        extra={"recipe": "CoVoST2/dual_encoder", "hparams": os.path.abspath(hparams_file)},
    )


if __name__ == "__main__":
    run_main(main)
