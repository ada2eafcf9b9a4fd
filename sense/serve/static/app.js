// The page of `sense serve`: text, uploaded or recorded queries -> /api/search -> the hits.
"use strict";

const $ = (id) => document.getElementById(id);
let recorder = null;

function filters() {
  const params = new URLSearchParams();
  for (const name of ["k", "kind", "language", "file"]) {
    const value = $(name).value.trim();
    if (value) params.set(name, value);
  }
  return params;
}

function clock(seconds) {
  const minutes = Math.floor(seconds / 60);
  return `${minutes}:${(seconds - 60 * minutes).toFixed(2).padStart(5, "0")}`;
}

// body[data-state]: "searching", then "done" or "error" (what a test waits for)
function showStatus(text, state) {
  $("status").textContent = text;
  $("status").className = state === "error" ? "error" : "";
  if (state) document.body.dataset.state = state;
}

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function renderHit(hit) {
  const item = element("li", "hit");
  item.dataset.id = hit.id;
  item.dataset.rank = hit.rank;
  item.appendChild(element("span", "score", hit.score.toFixed(4)));
  if (hit.kind === "audio") {
    const span = "start" in hit ? `  [${clock(hit.start)}–${clock(hit.end)}]` : "";
    item.appendChild(element("span", "where", hit.path + span));
    if (hit.language) item.appendChild(element("span", "language", `  ${hit.language}`));
    if (hit.audio_url) {
      const audio = element("audio");
      audio.controls = true;
      audio.preload = "metadata";
      audio.src = hit.audio_url; // "/audio/N#t=start,end": plays the hit's span
      item.appendChild(audio);
    }
  } else {
    item.appendChild(element("span", "where", `${hit.path}:${hit.line}`));
    if (hit.language) item.appendChild(element("span", "language", `  ${hit.language}`));
    item.appendChild(element("p", "text", hit.text));
  }
  return item;
}

async function search(request, label) {
  showStatus(`searching for ${label}…`, "searching");
  $("hits").replaceChildren();
  let body;
  try {
    const response = await fetch(request.url, request.init);
    body = await response.json();
    if (!response.ok) throw new Error(body.error || response.statusText);
  } catch (err) {
    showStatus(err.message, "error");
    return;
  }
  $("hits").replaceChildren(...body.hits.map(renderHit));
  showStatus(`${body.hits.length} hit(s) for ${label} among ${body.searched} entries, ` +
    `${body.seconds.toFixed(2)} s`, "done");
}

function searchText(event) {
  event.preventDefault();
  const params = filters();
  params.set("q", $("query").value);
  search({ url: `/api/search?${params}`, init: {} }, `“${$("query").value.trim()}”`);
}

function searchAudio(blob, name) {
  const form = new FormData();
  form.append("audio", blob, name);
  search({ url: `/api/search?${filters()}`, init: { method: "POST", body: form } }, name);
}

const EXTENSIONS = { "audio/webm": "webm", "audio/ogg": "ogg", "audio/mp4": "m4a", "audio/wav": "wav" };

async function toggleRecording() {
  if (recorder) {
    recorder.stop();
    return;
  }
  if (!navigator.mediaDevices || !window.MediaRecorder) {
    showStatus("recording needs a browser with MediaRecorder, on https or localhost", "error");
    return;
  }
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia({ audio: true });
  } catch (err) {
    showStatus(`no microphone: ${err.message}`, "error");
    return;
  }
  const chunks = [];
  recorder = new MediaRecorder(stream);
  recorder.ondataavailable = (event) => chunks.push(event.data);
  recorder.onstop = () => {
    stream.getTracks().forEach((track) => track.stop());
    const type = (recorder.mimeType || "audio/webm").split(";")[0];
    recorder = null;
    $("record").classList.remove("recording");
    $("record").textContent = "● Record";
    searchAudio(new Blob(chunks, { type }), `recording.${EXTENSIONS[type] || "webm"}`);
  };
  recorder.start();
  $("record").classList.add("recording");
  $("record").textContent = "■ Stop";
  showStatus("recording… press Stop to search");
}

async function loadInfo() {
  const info = await (await fetch("/api/info")).json();
  $("index-name").textContent = info.index;
  const kinds = Object.entries(info.kinds).map(([kind, n]) => `${n} ${kind}`).join(", ");
  $("index-info").textContent = `${info.size} entries (${kinds}) · model ${info.model}`;
  $("k").max = info.max_k;
  if (info.languages.length) {
    for (const language of info.languages) $("language").appendChild(new Option(language, language));
    $("language-label").hidden = false;
  }
}

document.addEventListener("DOMContentLoaded", () => {
  $("search-form").addEventListener("submit", searchText);
  $("audio-file").addEventListener("change", () => {
    const file = $("audio-file").files[0];
    if (file) searchAudio(file, file.name);
    $("audio-file").value = "";
  });
  $("record").addEventListener("click", toggleRecording);
  loadInfo().catch((err) => showStatus(`cannot read the index: ${err.message}`, "error"));
});
