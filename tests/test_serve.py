"""`sense serve`'s JSON API (issue 31): the hits are SpeechIndex.search's, filters, audio
queries (wav and a browser's webm/opus), recordings with Range, nothing else served,
bad requests in one line; and the command's errors, before torch where they are usage."""

import io
import json
import os

import av
import numpy as np
import pytest
import soundfile as sf
from fastapi.testclient import TestClient
from serve_fixture import SENTENCES, build_index, export, write_corpus
from test_cli import SR, tone
from test_cli_policy import run_in_a_fresh_process

import sense
from sense import formats
from sense.cli import main
from sense.index import SpeechIndex, load_index
from sense.serve.app import create_app
from sense.serve.upload import decode_audio

FILE_NUMBERS = {f"clips/clip{i}.wav": i for i in range(4)} | {"clips/talk.wav": 4}
OPUS_RATE = 48000


@pytest.fixture(scope="module")
def served(tmp_path_factory, tiny_w2v_bert, tiny_xlmr):
    """``(client, index, model, corpus, model_dir)``: the app on the tiny index."""
    root = tmp_path_factory.mktemp("serve")
    model_dir = export(str(root / "model"), tiny_w2v_bert, tiny_xlmr)
    corpus = root / "corpus"
    write_corpus(corpus)
    folder = build_index(corpus, model_dir)
    index, model = load_index(folder), sense.load(model_dir, device="cpu")
    client = TestClient(create_app(index, model, root=str(corpus), name="demo.index"))
    return client, index, model, corpus, model_dir


def without_urls(hits):
    return [{k: v for k, v in hit.items() if k != "audio_url"} for hit in hits]


def ids(hits):
    return [hit["id"] for hit in hits]


def webm_opus(wave: np.ndarray, rate: int = OPUS_RATE) -> bytes:
    """``wave`` as Chromium's MediaRecorder sends it: opus in a webm container."""
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="webm") as container:
        stream = container.add_stream("libopus", rate=rate)
        stream.layout = "mono"
        frame = av.AudioFrame.from_ndarray(wave[None].astype(np.float32), "flt", "mono")
        frame.sample_rate = rate
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            container.mux(packet)
    return buffer.getvalue()


# --- searches ------------------------------------------------------------------------


def test_text_hits_are_speech_index_search_with_a_url_that_plays_each_span(served):
    client, index, model, _, _ = served
    for query, k in ((SENTENCES[0], 5), ("un chat", 9)):
        body = client.get("/api/search", params={"q": f"  {query} ", "k": k}).json()
        expected = index.search(model.encode_text([query]), k=k)[0]
        assert without_urls(body["hits"]) == expected
        assert body["query"] == {"text": query} and body["k"] == k and body["searched"] == 9
    assert ids(body["hits"]) == [
        "sentences.txt:1", "sentences.txt:2", "clips/clip3.wav", "clips/clip1.wav",
        "clips/talk.wav#2", "clips/clip2.wav", "clips/clip0.wav", "clips/talk.wav#1",
        "clips/talk.wav#3",
    ]  # fmt: skip
    urls = {hit["id"]: hit.get("audio_url") for hit in body["hits"]}
    assert urls == {
        "sentences.txt:1": None,
        "sentences.txt:2": None,
        "clips/clip0.wav": "/audio/0#t=0,1",
        "clips/clip1.wav": "/audio/1#t=0,1",
        "clips/clip2.wav": "/audio/2#t=0,1",
        "clips/clip3.wav": "/audio/3#t=0,1",
        "clips/talk.wav#1": "/audio/4#t=0,2",
        "clips/talk.wav#2": "/audio/4#t=1,3",
        "clips/talk.wav#3": "/audio/4#t=2,4",
    }


def test_filters_by_kind_language_and_file_search_only_those_entries(served):
    client, index, model, _, _ = served
    query = "un chat"
    embedding = model.encode_text([query])

    def subset(keep):
        rows = [i for i, e in enumerate(index.entries) if keep(e)]
        entries = [index.entries[i] for i in rows]
        return SpeechIndex(index.info, index.embeddings[rows], entries).search(embedding, k=9)[0]

    cases = [
        ({"kind": "audio"}, lambda e: e["kind"] == "audio", 7),
        ({"kind": "text"}, lambda e: e["kind"] == "text", 2),
        ({"language": "fr"}, lambda e: e.get("language") == "fr", 3),
        ({"file": "clips/talk*"}, lambda e: e["path"] == "clips/talk.wav", 3),
        ({"file": "clip1"}, lambda e: e["path"] == "clips/clip1.wav", 1),
        (
            {"kind": "audio", "language": "fr"},
            lambda e: e.get("language") == "fr" and e["kind"] == "audio",
            2,
        ),
    ]
    for params, keep, count in cases:
        body = client.get("/api/search", params={"q": query, "k": 9, **params}).json()
        assert body["searched"] == count, params
        assert without_urls(body["hits"]) == subset(keep), params
    fr = client.get("/api/search", params={"q": query, "language": "fr"}).json()
    assert ids(fr["hits"]) == ["sentences.txt:2", "clips/talk.wav#2", "clips/clip0.wav"]
    none = client.get("/api/search", params={"q": query, "file": "*.mp3"}).json()
    assert none["hits"] == [] and none["searched"] == 0
    assert none["filters"] == {"kind": None, "language": None, "file": "*.mp3"}


def test_a_filtered_search_of_an_int8_index_searches_its_codes(served, tmp_path):
    """A filter over an int8 index keeps the codes and their quantizer: the hits are the
    unfiltered ranking's entries of that kind, with the same scores."""
    from sense.serve.query import Filters
    from sense.serve.searcher import Searcher

    _, _, model, corpus, model_dir = served
    folder = str(tmp_path / "int8.index")
    cwd = os.getcwd()
    os.chdir(corpus)
    try:
        argv = ["index", "-m", model_dir, "clips", "sentences.txt", "-o", folder, "--dtype", "int8"]
        assert main([*argv, "--device", "cpu", "-q"]) == 0
    finally:
        os.chdir(cwd)
    index = load_index(folder)
    assert index.info["dtype"] == "int8"
    searcher = Searcher(index, model)
    everything = searcher.text("un chat", k=len(index))
    for kind in ("audio", "text"):
        hits = searcher.text("un chat", k=9, filters=Filters(kind=kind))
        expected = [h for h in everything if h["kind"] == kind][:9]
        assert [(h["id"], h["score"]) for h in hits] == [(h["id"], h["score"]) for h in expected]


def test_an_uploaded_wav_is_searched_as_sense_search_audio_embeds_the_file(served):
    client, index, model, corpus, _ = served
    path = corpus / "clips" / "clip2.wav"
    files = {"audio": ("clip2.wav", path.read_bytes(), "audio/wav")}
    body = client.post("/api/search", params={"k": 3}, files=files).json()
    assert without_urls(body["hits"]) == index.search(model.encode_file(str(path))[None], k=3)[0]
    assert body["query"] == {"audio": "clip2.wav"}
    assert [(h["id"], h["score"]) for h in body["hits"]][0] == ("clips/clip2.wav", 1.0)
    text_only = client.post("/api/search", params={"kind": "text"}, files=files).json()
    assert ids(text_only["hits"]) == ["sentences.txt:1", "sentences.txt:2"]


def test_a_browser_recording_in_webm_opus_is_decoded_and_searched(served):
    client, index, model, _, _ = served
    t = np.arange(OPUS_RATE) / OPUS_RATE
    data = webm_opus(0.5 * np.sin(2 * np.pi * 440 * t))
    wav = decode_audio(data, "recording.webm")
    assert wav.shape == (SR,)  # 1 s at 48 kHz -> 16 kHz, opus's pre-skip removed
    assert int(np.abs(np.fft.rfft(wav.numpy())).argmax()) == 440  # 1 Hz bins: the tone
    files = {"audio": ("recording.webm", data, "audio/webm;codecs=opus")}
    body = client.post("/api/search", files=files).json()
    expected = index.search(model.encode_waveforms([wav])[0][None], k=5)[0]
    assert without_urls(body["hits"]) == expected
    assert body["query"] == {"audio": "recording.webm"}


# --- bad requests --------------------------------------------------------------------


def test_bad_requests_are_4xx_with_one_clear_message(served, tmp_path):
    client, _, _, corpus, _ = served
    wav = (corpus / "clips" / "clip0.wav").read_bytes()
    short = io.BytesIO()
    sf.write(short, tone(200, 0.01, 0), SR, format="WAV")
    cases = [
        (client.get("/api/search"), "empty query: type what to search for (in any language)"),
        (client.get("/api/search", params={"q": " \t"}), "empty query: type what to search"),
        (client.get("/api/search", params={"q": "x" * 2001}), "the query has 2001 characters; at"),
        (client.get("/api/search", params={"q": "a", "k": 0}), "k must be a whole number from 1"),
        (client.get("/api/search", params={"q": "a", "k": 101}), "to 100, got '101'"),
        (client.get("/api/search", params={"q": "a", "k": "ten"}), "from 1 to 100, got 'ten'"),
        (client.get("/api/search", params={"q": "a", "kind": "video"}), "kind must be audio or"),
        (client.post("/api/search"), "no audio: send the recording as the multipart form field"),
        (
            client.post("/api/search", files={"audio": ("notes.webm", b"not audio at all")}),
            "notes.webm: unreadable audio (Invalid data found when processing input)",
        ),
        (
            client.post("/api/search", files={"audio": ("empty.wav", b"")}),
            "empty.wav: empty file (0 bytes)",
        ),
        (
            client.post("/api/search", params={"k": 0}, files={"audio": ("a.wav", wav)}),
            "k must be a whole number from 1 to 100, got '0'",
        ),
        (
            client.post("/api/search", files={"audio": ("tiny.wav", short.getvalue())}),
            "tiny.wav: ",
        ),
    ]
    for response, message in cases:
        assert response.status_code == 400, (message, response.text)
        body = response.json()
        assert list(body) == ["error"] and message in body["error"], (message, body)
    assert cases[0][0].json() == {"error": "empty query: type what to search for (in any language)"}


def test_a_query_the_model_cannot_embed_is_a_500_with_the_reason(served):
    index = served[1]

    class NoTeacher:
        sample_rate = SR

        def encode_text(self, texts, batch_size=None):
            raise OSError("no teacher in the model folder")

    client = TestClient(create_app(index, NoTeacher()), raise_server_exceptions=False)
    response = client.get("/api/search", params={"q": "a"})
    assert response.status_code == 500
    assert response.json() == {"error": "OSError: no teacher in the model folder"}


# --- recordings ----------------------------------------------------------------------


def test_recordings_are_served_with_range_requests(served):
    client, _, _, corpus, _ = served
    data = (corpus / "clips" / "talk.wav").read_bytes()
    whole = client.get("/audio/4")
    assert whole.status_code == 200 and whole.content == data
    assert whole.headers["accept-ranges"] == "bytes"
    assert whole.headers["content-type"] in ("audio/x-wav", "audio/wav")
    part = client.get("/audio/4", headers={"Range": "bytes=1000-1999"})
    assert part.status_code == 206 and part.content == data[1000:2000]
    assert part.headers["content-range"] == f"bytes 1000-1999/{len(data)}"
    tail = client.get("/audio/4", headers={"Range": "bytes=-44"})
    assert tail.status_code == 206 and tail.content == data[-44:]
    past = client.get("/audio/4", headers={"Range": f"bytes={len(data)}-"})
    assert past.status_code == 416


def test_only_the_indexs_recordings_can_be_fetched(served, tmp_path):
    client, index, model, corpus, _ = served
    secret = (corpus / "sentences.txt").read_text(encoding="utf-8")
    refused = [
        "/audio/5",
        "/audio/-1",
        "/audio/4.0",
        "/audio/..%2Fsentences.txt",
        "/audio/..%2F..%2F..%2Fetc%2Fpasswd",
        "/audio/%2e%2e/sentences.txt",
        "/audio/../sentences.txt",
        "/sentences.txt",
        "/static/../app.py",
        "/static/..%2Fapp.py",
        "/static/%2e%2e/%2e%2e/sentences.txt",
        "/corpus/clips/clip0.wav",
    ]
    for url in refused:
        response = client.get(url)
        assert response.status_code == 404, (url, response.status_code)
        assert secret not in response.text and "import" not in response.text, url
    assert client.get("/audio/5").json() == {"error": "no recording 5 in this index"}
    moved = TestClient(create_app(index, model, root=str(tmp_path)))
    missing = moved.get("/audio/0")
    assert missing.status_code == 404
    assert missing.json() == {
        "error": f"{tmp_path / 'clips' / 'clip0.wav'}: the recording is missing on the server"
    }


def test_the_page_its_script_and_the_index_summary(served):
    client = served[0]
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    for element in ('id="query"', 'id="audio-file"', 'id="record"', 'id="hits"'):
        assert element in page.text
    assert "MediaRecorder" in client.get("/static/app.js").text
    assert client.get("/api/info").json() == {
        "index": "demo.index",
        "model": served[4],
        "size": 9,
        "kinds": {"audio": 7, "text": 2},
        "languages": ["en", "fr"],
        "default_k": 5,
        "max_k": 100,
    }


# --- the command -----------------------------------------------------------------------


def test_command_errors_come_in_one_line_and_usage_errors_before_torch(
    served, tiny_w2v_bert, tiny_xlmr, tmp_path, capsys
):
    _, _, _, corpus, model_dir = served
    folder = str(corpus / "demo.index")
    slu = tmp_path / "slu"  # the kind is read from meta.json before anything is loaded
    slu.mkdir()
    (slu / "meta.json").write_text(json.dumps({"format": formats.SLU_MODEL}), encoding="utf-8")
    slu = str(slu)
    import socket

    taken = socket.create_server(("127.0.0.1", 0))
    port = taken.getsockname()[1]
    cases = [
        (["serve"], 2, "the following arguments are required: index"),
        (["serve", folder, "--port", "70000"], 2, "must be a port from 0 to 65535, got '70000'"),
        (["serve", folder, "--port", "x"], 2, "must be a port from 0 to 65535, got 'x'"),
        (["serve", folder, "-m", slu], 2, "an SLU model; sense serve needs"),
        (["serve", folder, "--root", str(tmp_path / "nowhere")], 1, "--root "),
        (
            ["serve", folder, "--port", str(port)],
            1,
            f"sense: error: cannot listen on 127.0.0.1:{port}: Address already in use (another "
            "server listens there): choose another --port",
        ),
        (["serve", str(tmp_path)], 1, "not a sense index (no index.json)"),
    ]
    results = run_in_a_fresh_process([argv for argv, _, _ in cases], heavy=("torch",))
    taken.close()
    for (argv, status, message), (got, err, torch_loaded) in zip(cases, results):
        last = err.strip().splitlines()[-1]
        assert got == status and message in last, (argv, err)
        assert last.startswith(("sense serve: error: ", "sense: error: ")), err
        assert "Traceback" not in err and not torch_loaded, argv
    other = export(str(tmp_path / "other"), tiny_w2v_bert, tiny_xlmr, seed=1)
    status = main(["serve", folder, "-m", other, "--port", "0", "--device", "cpu"])
    err = capsys.readouterr().err
    assert status == 2 and err.strip().splitlines()[-1] == (
        f"sense serve: error: the index {folder} was built with the model {model_dir}, not "
        f"{other}: its embeddings are not comparable with this model's; rebuild the index, "
        "search with its model, or pass --force"
    )
