"""Shared fixtures: tiny real models saved once per session in the hub layout."""

import locale
import os

# Tests never touch the network: every model is loaded from a local folder.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Under pytest-xdist (`make test`) each worker takes one core, and so do the
# recipe runs it starts: two workers fill two cores without oversubscribing them.
XDIST = "PYTEST_XDIST_WORKER" in os.environ
if XDIST:
    os.environ["OMP_NUM_THREADS"] = "1"

import pytest  # noqa: E402
import torch  # noqa: E402

from sense.testing import tiny  # noqa: E402

torch.set_num_threads(1 if XDIST else 2)


def pytest_collection_modifyitems(config, items):
    """Files with ``slow`` tests run first (so the workers end together); ``cuda`` tests are
    skipped, with the reason, where torch sees no GPU."""
    slow_files = {item.path for item in items if "slow" in item.keywords}
    items.sort(key=lambda item: item.path not in slow_files)  # stable: file order kept
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="module")
def cv_release(tmp_path_factory):
    """``(root, info)`` of a tiny Common Voice release (see ``cv_fixture.build_common_voice``)."""
    from cv_fixture import build_common_voice

    root = str(tmp_path_factory.mktemp("cv"))
    return root, build_common_voice(root)


@pytest.fixture(scope="session")
def tiny_w2v_bert(tmp_path_factory):
    """Folder of a tiny ``Wav2Vec2BertModel`` (w2v-BERT 2.0 architecture)."""
    return tiny.build_tiny_w2v_bert(str(tmp_path_factory.mktemp("w2v_bert")))


@pytest.fixture(scope="session")
def tiny_wav2vec2(tmp_path_factory):
    """Folder of a tiny XLS-R style ``Wav2Vec2Model``."""
    return tiny.build_tiny_wav2vec2(str(tmp_path_factory.mktemp("wav2vec2")))


@pytest.fixture(scope="session")
def tiny_xlmr(tmp_path_factory):
    """Folder of a tiny BGE-M3-like ``XLMRobertaModel`` with its tokenizer."""
    return tiny.build_tiny_xlm_roberta(str(tmp_path_factory.mktemp("xlmr")))


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory):
    """Folder of a tiny LaBSE-like ``BertModel`` with its tokenizer."""
    return tiny.build_tiny_bert(str(tmp_path_factory.mktemp("bert")))


@pytest.fixture
def ascii_locale():
    """The C locale's ASCII as this process's locale encoding (what ``open`` and
    ``read_text`` use when given no encoding), put back after the test. Set in this
    process: a child process under the C locale misreads mutmut's mutant names."""
    old = locale.setlocale(locale.LC_CTYPE)
    locale.setlocale(locale.LC_CTYPE, "C")
    try:
        yield
    finally:
        locale.setlocale(locale.LC_CTYPE, old)
