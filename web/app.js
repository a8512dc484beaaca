// The page: controls drawn from the model's own list (GET /api/models, which also names the primer
// files the server reads), POST /api/generate, each melody shown as its score with its audio and
// downloads, and this session's history.
"use strict";

const $ = (id) => document.getElementById(id);
const NAMES = ["C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B"];
let models = [];
const history = [];

function say(text, isError) {
  $("message").textContent = text;
  $("message").className = isError ? "error" : "";
}

async function api(url, options) {
  const response = await fetch(url, options);
  let body;
  try { body = await response.json(); } catch (e) { body = { error: `${response.status} ${response.statusText}` }; }
  if (!response.ok) throw new Error(body.error || `${response.status} ${response.statusText}`);
  return body;
}

function currentModel() { return models.find((m) => m.id === $("model").value); }

// One input per control the model takes; an empty one leaves the choice to the model.
function drawControls() {
  const box = $("control-fields");
  const previous = Object.fromEntries([...box.querySelectorAll("[name]")].map((e) => [e.name, e.value]));
  box.replaceChildren();
  for (const spec of currentModel().controls) {
    const label = document.createElement("label");
    label.append(spec.label + " ");
    let input;
    if (spec.kind === "select") {
      input = document.createElement("select");
      input.append(new Option(spec.none || "", ""));
      for (const option of spec.options) input.append(new Option(option, option));
    } else {
      input = document.createElement("input");
      input.type = "number";
      input.min = spec.min; input.max = spec.max;
      input.step = spec.step || 1;
      if (spec.none) input.placeholder = spec.none;
    }
    input.name = spec.name;
    input.dataset.kind = spec.kind;
    input.value = previous[spec.name] ?? (spec.default ?? "");
    label.append(input);
    box.append(label);
  }
  drawKeyboard();
}

function drawKeyboard() {
  const known = new Set(currentModel().vocabulary);
  const pitches = currentModel().vocabulary.filter((s) => /^\d+$/.test(s)).map(Number);
  const low = Math.max(Math.min(...pitches) - (Math.min(...pitches) % 12), Math.max(...pitches) - 35);
  const high = Math.min(Math.max(...pitches), low + 35);
  const board = $("keyboard");
  board.replaceChildren();
  let whites = 0;
  for (let midi = low; midi <= high; midi++) {
    const name = NAMES[midi % 12];
    const black = name.includes("#");
    const key = document.createElement("button");
    key.type = "button";
    key.className = black ? "black" : "white";
    key.title = `${name}${Math.floor(midi / 12) - 1} (${midi})`;
    key.dataset.midi = midi;
    if (!black) key.textContent = name === "C" ? key.title.split(" ")[0] : "";
    key.style.left = black ? `${whites * 1.6 - 0.55}em` : `${whites * 1.6}em`;
    key.disabled = !known.has(String(midi));
    key.addEventListener("click", () => addToSeed(String(midi)));
    board.append(key);
    if (!black) whites++;
  }
}

function addToSeed(symbol) {
  const length = Number($("note-length").value);
  const symbols = [symbol, ...Array(length - 1).fill("_")];
  $("seed").value = ($("seed").value.trim() + " " + symbols.join(" ")).trim();
}

function undoSeed() {
  const symbols = $("seed").value.trim().split(/\s+/).filter(Boolean);
  while (symbols.length && symbols[symbols.length - 1] === "_") symbols.pop();
  symbols.pop();
  $("seed").value = symbols.join(" ");
}

function readControls() {
  const request = { model: $("model").value, seed: $("seed").value.trim() };
  for (const input of $("control-fields").querySelectorAll("[name]")) {
    if (input.value === "") continue;  // left to the model
    request[input.name] = input.dataset.kind === "select" ? input.value : Number(input.value);
  }
  return request;
}

async function generate(event) {
  event.preventDefault();
  const request = readControls();
  $("generate").disabled = true;
  say("generating…");
  const started = performance.now();
  try {
    const result = await api("/api/generate", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(request),
    });
    const seconds = ((performance.now() - started) / 1000).toFixed(2);
    say(`${result.melodies.length} melod${result.melodies.length === 1 ? "y" : "ies"} in ${seconds} s (random seed ${result.random_seed})`);
    history.unshift({ time: new Date(), request, result });
    showResult(result);
    drawHistory();
  } catch (error) {
    say(error.message, true);
  } finally {
    $("generate").disabled = false;
  }
}

function describe(melody) {
  return [melody.meter, melody.key, melody.bars ? `${melody.bars} bars` : "", melody.style || "", `${melody.symbols.length - melody.seed_length} steps after the seed`]
    .filter(Boolean).join(", ");
}

function showResult(result) {
  const box = $("results");
  box.replaceChildren();
  result.melodies.forEach((melody, i) => {
    const card = document.createElement("article");
    card.className = "melody";
    card.innerHTML = `<h3></h3><div class="score"></div>
      <p><audio controls preload="auto"></audio></p>
      <p class="downloads"><a download>MIDI</a><a download>MusicXML</a><a download>WAV</a></p>
      <details><summary>symbols</summary><p class="symbols"></p></details>`;
    card.querySelector("h3").textContent = `Melody ${i + 1}: ${describe(melody)}`;
    card.querySelector(".score").innerHTML = melody.svg;  // verovio's SVG, made by this app
    const audio = card.querySelector("audio");
    audio.src = melody.wav;
    const [midi, musicxml, wav] = card.querySelectorAll(".downloads a");
    midi.href = melody.midi; musicxml.href = melody.musicxml; wav.href = melody.wav;
    card.querySelector(".symbols").textContent = melody.symbols.join(" ");
    follow(audio, card.querySelector(".score"), melody);
    box.append(card);
  });
}

// While the audio plays, colour the note being heard: the score's notes in order, each a piece
// of a note split at a barline, as render.melody_score splits them.
function notePieces(melody) {
  const [beats, unit] = (melody.meter.includes("/") ? melody.meter : "4/4").split("/").map(Number);
  const bar = (16 * beats) / unit;
  const start = (bar - melody.pickup) % bar;
  const pieces = [];
  let at = start;
  let i = 0;
  const symbols = melody.symbols;
  while (i < symbols.length) {
    let j = i + 1;
    while (j < symbols.length && symbols[j] === "_") j++;
    let from = at;
    const end = at + (j - i);
    while (from < end) {
      const to = Math.min(end, (Math.floor(from / bar) + 1) * bar);
      if (symbols[i] !== "r" && symbols[i] !== "_") pieces.push([from - start, to - start]);
      from = to;
    }
    at = end;
    i = j;
  }
  return pieces;
}

function follow(audio, score, melody) {
  const notes = [...score.querySelectorAll("g.note")];
  const pieces = notePieces(melody);
  if (notes.length !== pieces.length) return;  // a note drawn as two (a 5/16, say): no guessing
  let lit = null;
  const tick = () => {
    const step = audio.currentTime / melody.seconds_per_step;
    const index = pieces.findIndex(([from, to]) => step >= from && step < to);
    const note = index >= 0 ? notes[index] : null;
    if (note !== lit) {
      if (lit) lit.classList.remove("playing");
      if (note) note.classList.add("playing");
      lit = note;
    }
    if (!audio.paused) requestAnimationFrame(tick);
  };
  audio.addEventListener("play", () => requestAnimationFrame(tick));
  audio.addEventListener("ended", () => { if (lit) lit.classList.remove("playing"); lit = null; });
}

function drawHistory() {
  const list = $("history");
  list.replaceChildren();
  for (const entry of history) {
    const item = document.createElement("li");
    const melodies = entry.result.melodies;
    item.textContent = `${entry.time.toLocaleTimeString()}: ${melodies.length} × ${describe(melodies[0])} (${entry.result.model}, random seed ${entry.result.random_seed})`;
    item.addEventListener("click", () => showResult(entry.result));
    list.append(item);
  }
}

async function uploadPrimer() {
  const file = $("primer").files[0];
  if (!file) return;
  say(`reading ${file.name}…`);
  try {
    const url = `/api/primer?name=${encodeURIComponent(file.name)}&model=${encodeURIComponent($("model").value)}`;
    const result = await api(url, { method: "POST", body: file });
    $("seed").value = result.seed;
    // the primer's meter and pickup, where this model knows them, so the melody goes on in them
    for (const name of ["meter", "pickup"]) {
      const input = $("control-fields").querySelector(`[name=${name}]`);
      if (input && (input.tagName !== "SELECT" || [...input.options].some((o) => o.value === String(result[name])))) {
        input.value = result[name];
      }
    }
    say(result.message);
  } catch (error) {
    say(error.message, true);
  } finally {
    $("primer").value = "";
  }
}

async function start() {
  $("controls").addEventListener("submit", generate);
  $("model").addEventListener("change", drawControls);
  $("rest").addEventListener("click", () => addToSeed("r"));
  $("undo").addEventListener("click", undoSeed);
  $("clear-seed").addEventListener("click", () => { $("seed").value = ""; });
  $("primer").addEventListener("change", uploadPrimer);
  try {
    const listed = await api("/api/models");
    models = listed.models;
    $("primer").accept = listed.primer_suffixes.join(",");  // the server's readers say which
  } catch (error) {
    say(error.message, true);
    return;
  }
  if (!models.length) {
    say("no model found (model.pth, runs/*/model.pth, pretrained/*/model.pth): run preprocess.py and train.py first", true);
    $("generate").disabled = true;
    return;
  }
  for (const model of models) $("model").append(new Option(model.id, model.id));
  drawControls();
  say("ready");
}

start();
