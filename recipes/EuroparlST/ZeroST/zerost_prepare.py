"""Transcribed speech for ZeroST training: Common Voice as released -> manifests with NLLB codes.

ZeroST trains on transcribed speech only. This runs the Common Voice
preparation of ``recipes/CommonVoice/SENSE`` (decoding, resampling, bad clips
reported) and writes ``zerost_<split>.csv`` beside its manifests with the
columns of :data:`sense.zerost.brain.ZEROST_FIELDS`, ``language`` being the
NLLB code of the clip's locale (the token NLLB's tokenizer puts first).
VoxPopuli or MLS manifests with the same columns can be added to the
training list as they are.

Usage::

    python zerost_prepare.py /data/cv-corpus-16.1 prepared --languages en fr de it es pt pl ro nl
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping

from europarl_prepare import NLLB_CODES

from sense.prepare import read_manifest, write_manifest
from sense.zerost.brain import ZEROST_FIELDS

sys.path.insert(
    0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "CommonVoice", "SENSE")
)
from commonvoice_prepare import prepare_common_voice, read_languages  # noqa: E402

#: Common Voice locale -> NLLB-200 code, for the locales NLLB covers.
COMMON_VOICE_NLLB = {
    **NLLB_CODES,
    "af": "afr_Latn", "am": "amh_Ethi", "ar": "arb_Arab", "as": "asm_Beng", "ast": "ast_Latn",
    "ba": "bak_Cyrl", "be": "bel_Cyrl", "bg": "bul_Cyrl", "bn": "ben_Beng", "ca": "cat_Latn",
    "ckb": "ckb_Arab", "cs": "ces_Latn", "cy": "cym_Latn", "da": "dan_Latn", "el": "ell_Grek",
    "eo": "epo_Latn", "et": "est_Latn", "eu": "eus_Latn", "fa": "pes_Arab", "fi": "fin_Latn",
    "ga-IE": "gle_Latn", "gl": "glg_Latn", "gn": "grn_Latn", "ha": "hau_Latn", "he": "heb_Hebr",
    "hi": "hin_Deva", "hu": "hun_Latn", "hy-AM": "hye_Armn", "id": "ind_Latn", "ig": "ibo_Latn",
    "ja": "jpn_Jpan", "ka": "kat_Geor", "kab": "kab_Latn", "kk": "kaz_Cyrl", "kmr": "kmr_Latn",
    "ko": "kor_Hang", "ky": "kir_Cyrl", "lg": "lug_Latn", "lo": "lao_Laoo", "lt": "lit_Latn",
    "lv": "lvs_Latn", "mk": "mkd_Cyrl", "ml": "mal_Mlym", "mn": "khk_Cyrl", "mr": "mar_Deva",
    "mt": "mlt_Latn", "ne-NP": "npi_Deva", "nn-NO": "nno_Latn", "oc": "oci_Latn",
    "or": "ory_Orya", "pa-IN": "pan_Guru", "ps": "pbt_Arab", "ru": "rus_Cyrl", "rw": "kin_Latn",
    "sc": "srd_Latn", "sk": "slk_Latn", "sl": "slv_Latn", "sr": "srp_Cyrl", "sv-SE": "swe_Latn",
    "sw": "swh_Latn", "ta": "tam_Taml", "te": "tel_Telu", "tg": "tgk_Cyrl", "th": "tha_Thai",
    "ti": "tir_Ethi", "tk": "tuk_Latn", "tr": "tur_Latn", "tt": "tat_Cyrl", "ug": "uig_Arab",
    "uk": "ukr_Cyrl", "ur": "urd_Arab", "uz": "uzn_Latn", "vi": "vie_Latn", "yo": "yor_Latn",
    "yue": "yue_Hant", "zh-CN": "zho_Hans", "zh-HK": "yue_Hant", "zh-TW": "zho_Hant",
}  # fmt: skip
MANIFEST_PREFIX = "zerost_"


def nllb_codes(locales, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The NLLB code of each Common Voice locale (``extra`` adds or overrides codes).

    Raises
    ------
    ValueError
        Naming the locales without a code.

    Example
    -------
    >>> nllb_codes(["fr", "zh-CN"])
    {'fr': 'fra_Latn', 'zh-CN': 'zho_Hans'}
    """
    table = {**COMMON_VOICE_NLLB, **(extra or {})}
    missing = [code for code in locales if code not in table]
    if missing:
        raise ValueError(
            f"no NLLB code for the Common Voice locales {missing}: leave them out, or give "
            "their codes in nllb_codes (e.g. {br: ...}); NLLB's codes are its tokenizer's "
            "language tokens"
        )
    return {code: table[code] for code in locales}


def prepare_zerost_data(
    data_folder: str,
    save_folder: str,
    languages,
    splits=("train", "dev"),
    workers: int = 1,
    min_duration: float = 0.1,
    extra_codes: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Prepare Common Voice and write ZeroST manifests; ``{split: path}``."""
    codes = nllb_codes(read_languages(languages), extra_codes)
    result = prepare_common_voice(
        data_folder, save_folder, list(codes), splits, workers=workers, min_duration=min_duration
    )
    out = {}
    for split, path in result["manifests"].items():
        rows = read_manifest(path)
        for row in rows:
            row["language"] = codes[row["language"]]
        out[split] = os.path.join(save_folder, f"{MANIFEST_PREFIX}{split}.csv")
        write_manifest(out[split], rows, ZEROST_FIELDS)
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("data_folder", help="Common Voice release (one folder per locale)")
    parser.add_argument("save_folder")
    parser.add_argument("--languages", nargs="+", default=list(NLLB_CODES))
    parser.add_argument("--splits", nargs="+", default=["train", "dev"])
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args(argv)
    try:
        manifests = prepare_zerost_data(
            args.data_folder, args.save_folder, args.languages, args.splits, args.workers
        )
    except (OSError, ValueError) as err:
        parser.exit(2, f"zerost_prepare: error: {err}\n")
    for split, path in manifests.items():
        print(f"{split}\t{path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
