"""sense: speech encoders that share the semantic space of a multilingual text encoder.

SENSE (Shared Embedding for N-lingual Speech and tExt) trains a speech encoder
as a student of a frozen multilingual sentence encoder, so that an utterance
lands next to the embedding of its transcript and of that transcript's
translations.
"""

__version__ = "0.1.0"


def load(source, **kwargs):
    """Load any exported ``sense`` folder or hub id with the interface its ``meta.json`` names.

    A SENSE model, a translator, a ZeroST translator, an SLU model, a
    summarizer or a dual encoder; keywords as :func:`sense.formats.load`.

    Example
    -------
    >>> import sense
    >>> model = sense.load("path/to/exported-folder", device="cpu")  # doctest: +SKIP
    """
    from sense.formats import load as _load

    return _load(source, **kwargs)


def __getattr__(name: str):
    """``sense.SENSE``, ``sense.Translator``, ...: the interfaces of :data:`sense.formats.FORMATS`.

    Imported on first use (torch loads then).
    """
    from sense.formats import FORMATS

    for model_format in FORMATS.values():
        if model_format.interface.endswith(f":{name}"):
            return model_format.load_interface()
    raise AttributeError(f"module 'sense' has no attribute {name!r}")


__all__ = ["__version__", "load"]
