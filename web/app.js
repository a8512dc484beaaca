// The page: controls drawn from the model's own list (GET /api/models, which also names the primer
// files the server reads), POST /api/generate, each melody shown as its score with its audio and
// downloads, its bars chosen by clicking them and sampled again (POST /api/regenerate) with an
// undo, each note's surprisal charted under its score where asked, and this session's history.
"use strict";

const $ = (id) => document.getElementById(id);
const NAMES = ["C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B"];
const DOWNLOADS = ["MIDI", "MusicXML", "WAV", "ABC", "kern"];  // each melody's files, in order
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

// One input per control the model takes, with its line of help; an empty one leaves the choice
// to the model.
function drawControls() {
  const box = $("control-fields");
  const previous = Object.fromEntries([...box.querySelectorAll("[name]")].map((e) => [e.name, e.type === "checkbox" ? e.checked : e.value]));
  box.replaceChildren();
  for (const spec of currentModel().controls) {
    const row = document.createElement("div");
    row.className = "control";
    const label = document.createElement("label");
    label.append(spec.label + " ");
    let input;
    if (spec.kind === "select") {
      input = document.createElement("select");
      input.append(new Option(spec.none || "", ""));
      for (const option of spec.options) input.append(new Option(option, option));
    } else if (spec.kind === "bool") {
      input = document.createElement("input");
      input.type = "checkbox";
    } else {
      input = document.createElement("input");
      input.type = spec.kind === "text" ? "text" : "number";
      if (spec.kind !== "text") { input.min = spec.min; input.max = spec.max; input.step = spec.step || 1; }
      if (spec.none) input.placeholder = spec.none;
    }
    input.name = spec.name;
    input.dataset.kind = spec.kind;
    if (spec.kind === "bool") input.checked = previous[spec.name] ?? Boolean(spec.default);
    else input.value = previous[spec.name] ?? (spec.default ?? "");
    const help = document.createElement("small");
    help.className = "help";
    help.id = `help-${spec.name}`;
    help.textContent = spec.help || "";
    input.setAttribute("aria-describedby", help.id);
    input.title = spec.help || "";
    label.append(input);
    row.append(label, help);
    box.append(row);
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
    if (input.type === "checkbox") {
      if (input.checked) request[input.name] = true;  // unticked: the default, left out
      continue;
    }
    if (input.value === "") continue;  // left to the model
    const text = input.dataset.kind === "select" || input.dataset.kind === "text";
    request[input.name] = text ? input.value : Number(input.value);
  }
  return request;
}

// The settings and the random seed as a link: opened, it makes the same melodies again.
function linkTo(request, randomSeed) {
  const params = new URLSearchParams();
  for (const [name, value] of Object.entries({ ...request, random_seed: randomSeed })) {
    if (value !== "" && value !== undefined) params.set(name, value);
  }
  return `${location.origin}${location.pathname}?${params}`;
}

// A link's settings put back into the controls; true where there were any.
function readLink() {
  const params = new URLSearchParams(location.search);
  if (![...params.keys()].length) return false;
  if (params.has("model") && currentModelOf(params.get("model"))) { $("model").value = params.get("model"); drawControls(); }
  if (params.has("seed")) $("seed").value = params.get("seed");
  for (const input of $("control-fields").querySelectorAll("[name]")) {
    if (input.type === "checkbox") input.checked = params.get(input.name) === "true";
    else if (params.has(input.name)) input.value = params.get(input.name);
  }
  return true;
}

function currentModelOf(id) { return models.find((m) => m.id === id && m.usable); }

async function generate(event) {
  if (event) event.preventDefault();
  const request = readControls();
  request.score_width = Math.max(200, Math.min(4000, Math.floor($("results").clientWidth - 24)));
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
    delete request.score_width;
    const link = linkTo(request, result.random_seed);
    history.unshift({ time: new Date(), request, result, link });
    showResult(result, link);
    drawHistory();
    // below the fold (on a phone, under the controls): scroll to it
    if ($("results").getBoundingClientRect().top > innerHeight * 0.6) $("results").scrollIntoView({ behavior: "smooth", block: "start" });
  } catch (error) {
    say(error.message, true);
  } finally {
    $("generate").disabled = false;
  }
}

// What a melody is, as its title: a melody cut short by the steps says so.
function describe(melody) {
  const bars = !melody.bars ? "" : melody.complete ? `${melody.bars} bars` : `cut at ${melody.symbols.length} steps of ${melody.bars} bars planned`;
  const form = melody.form ? `form ${melody.form}` : "";
  return [melody.meter, melody.key, bars, melody.style || "", form, `${melody.symbols.length - melody.seed_length} steps after the seed`]
    .filter(Boolean).join(", ");
}

function showResult(result, link) {
  const box = $("results");
  box.replaceChildren();
  if (link) {
    const again = document.createElement("p");
    again.innerHTML = '<a id="again">link to these melodies</a> (the settings and random seed: it makes them again)';
    again.querySelector("a").href = link;
    box.append(again);
  }
  result.melodies.forEach((melody, i) => {
    const card = document.createElement("article");
    card.className = "melody";
    // versions: the melody and each edit of it, the last one shown (undo drops it); selected: the
    // bar numbers chosen, kept across versions
    Object.assign(card, { number: i + 1, versions: [melody], selected: new Set() });
    card.innerHTML = `<h3></h3><div class="score" title="click bars to choose them"></div>
      <figure class="surprisal" hidden></figure>
      <div class="edit-tools">
        <button type="button" class="regenerate">regenerate selected</button>
        <button type="button" class="same-rhythm">new pitches, same rhythm</button>
        <button type="button" class="undo-edit">undo</button>
        <small class="help">Click bars in the score to choose them (again to drop one).
          "Regenerate selected" samples them again and keeps every other bar; "new pitches, same
          rhythm" keeps their notes' onsets, lengths and rests (every bar when none is chosen);
          "undo" goes back to the version before.</small>
      </div>
      <p><audio controls preload="auto"></audio></p>
      <p class="downloads">${DOWNLOADS.map((name) => `<a download>${name}</a>`).join("")}</p>
      <details><summary>symbols</summary><p class="symbols"></p></details>`;
    card.querySelector(".score").addEventListener("click", (event) => chooseBar(card, event));
    card.querySelector(".regenerate").addEventListener("click", () => edit(card, null));
    card.querySelector(".same-rhythm").addEventListener("click", () => edit(card, "rhythm"));
    card.querySelector(".undo-edit").addEventListener("click", () => undoEdit(card));
    box.append(card);
    showVersion(card);  // once on the page: the surprisal chart reads where the notes are drawn
  });
}

// The card's latest version: its title, score (the chosen bars marked), audio and downloads.
function showVersion(card) {
  const melody = card.versions[card.versions.length - 1];
  const edits = card.versions.length - 1;
  const edited = edits ? ` (edited ${edits} time${edits === 1 ? "" : "s"})` : "";
  card.querySelector("h3").textContent = `Melody ${card.number}: ${describe(melody)}${edited}`;
  const score = card.querySelector(".score");
  score.innerHTML = melody.svg;  // verovio's SVG, made by this app
  const old = card.querySelector("audio");
  const audio = old.cloneNode(false);  // a fresh player: the old one follows the old score
  old.replaceWith(audio);
  audio.src = melody.wav;
  const [midi, musicxml, wav, abc, kern] = card.querySelectorAll(".downloads a");
  midi.href = melody.midi; musicxml.href = melody.musicxml; wav.href = melody.wav;
  abc.href = melody.files.abc; kern.href = melody.files.krn;
  card.querySelector(".symbols").textContent = melody.symbols.join(" ");
  card.querySelector(".undo-edit").disabled = !edits;
  markBars(card);
  follow(audio, score, melody);
  drawSurprisal(card.querySelector(".surprisal"), score.querySelector("svg"), melody.surprisal);
}

// The score's bars in order, each with its number (verovio draws one g.measure per bar).
function measures(card) {
  const melody = card.versions[card.versions.length - 1];
  return [...card.querySelectorAll(".score g.measure")].map((m, i) => [m, melody.bar_numbers[i]]);
}

// A click anywhere in a bar's box (between staff lines too) chooses or drops that bar.
function chooseBar(card, event) {
  const hit = measures(card).find(([m]) => {
    const box = m.getBoundingClientRect();
    return event.clientX >= box.left && event.clientX <= box.right
      && event.clientY >= box.top && event.clientY <= box.bottom;
  });
  if (!hit || hit[1] === undefined) return;
  if (!card.selected.delete(hit[1])) card.selected.add(hit[1]);
  markBars(card);
}

// Each chosen bar gets the class "selected" and a shaded box behind it.
function markBars(card) {
  for (const [measure, number] of measures(card)) {
    const on = card.selected.has(number);
    measure.classList.toggle("selected", on);
    measure.querySelector(":scope > rect.bar-selection")?.remove();
    if (!on) continue;
    const box = measure.getBBox();
    const pad = box.height * 0.1;
    const rect = document.createElementNS("http://www.w3.org/2000/svg", "rect");
    rect.setAttribute("class", "bar-selection");
    const shape = { x: box.x, y: box.y - pad, width: box.width, height: box.height + 2 * pad };
    for (const [name, value] of Object.entries(shape)) rect.setAttribute(name, value);
    measure.prepend(rect);
  }
}

function barList(numbers) { return [...numbers].sort((a, b) => a - b).join(", "); }

// POST /api/regenerate: the chosen bars sampled again (keep "rhythm": new pitches over their
// rhythm, every bar when none is chosen), shown as the card's next version.
async function edit(card, keep) {
  if (!card.selected.size && keep === null) {
    say("choose the bars to regenerate first: click them in the score", true);
    return;
  }
  const melody = card.versions[card.versions.length - 1];
  const bars = card.selected.size ? [...card.selected] : null;
  const buttons = card.querySelectorAll(".edit-tools button");
  buttons.forEach((b) => { b.disabled = true; });
  say("regenerating…");
  try {
    const width = Math.round(card.querySelector(".score svg")?.width.baseVal.value || 945);
    const result = await api("/api/regenerate", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ melody_id: melody.id, bars, keep, score_width: width, surprisal: surprisalAsked(),
        ...sampling() }),
    });
    card.versions.push(result.melody);
    const which = bars ? `bar${bars.length === 1 ? "" : "s"} ${barList(bars)}` : "every bar";
    const what = keep === "rhythm" ? `new pitches over the same rhythm in ${which}`
      : `${which} regenerated`;
    say(`melody ${card.number}: ${what} (random seed ${result.random_seed}); undo goes back`);
  } catch (error) {
    say(error.message, true);
  } finally {
    buttons.forEach((b) => { b.disabled = false; });
    showVersion(card);
  }
}

// The page's temperatures, which a regenerated bar is sampled at as a new melody is.
function sampling() {
  const { temperature, pitch_temperature } = readControls();
  return { temperature, pitch_temperature };
}

function surprisalAsked() {
  return Boolean($("control-fields").querySelector("[name=surprisal]")?.checked);
}

const SVG = "http://www.w3.org/2000/svg";
const ROW = 48;  // the chart's height per line of the score, in the score's own pixels

function svgElement(name, attributes, text) {
  const element = document.createElementNS(SVG, name);
  for (const [key, value] of Object.entries(attributes)) element.setAttribute(key, value);
  if (text !== undefined) element.textContent = text;
  return element;
}

// Each note's surprisal (the bits of its pitch, its onset given) as a line chart under the score:
// a row per line of the score, each dot under the note it scores (the drawn note's x, in the
// score's own pixels: the chart scales with the score), the mean in words. Pointing at a dot
// colours its note.
function drawSurprisal(figure, score, surprisal) {
  figure.replaceChildren();
  figure.hidden = !surprisal || !score;
  if (figure.hidden) return;
  const mean = surprisal.mean_pitch_bits;
  const caption = document.createElement("figcaption");
  caption.textContent = mean === null ? "Surprisal: no notes to score."
    : `Surprisal: ${mean.toFixed(1)} bits per note on average (each note's pitch, its onset given; higher is less expected).`;
  const width = score.width.baseVal.value;
  const box = score.getBoundingClientRect();
  const scale = width / (box.width || width);
  const systems = [...score.querySelectorAll("g.system")];
  const points = [];
  surprisal.pitch_bits.forEach((bits, k) => {
    const note = surprisal.drawn[k] && score.querySelector(`#${CSS.escape(surprisal.drawn[k])}`);
    if (!note) return;
    const head = (note.querySelector(".notehead") || note).getBoundingClientRect();
    const x = (head.left + head.width / 2 - box.left) * scale;
    points.push({ k, bits, x, row: Math.max(0, systems.indexOf(note.closest("g.system"))), note });
  });
  const rows = Math.max(1, systems.length, ...points.map((p) => p.row + 1));
  const top = Math.max(1, Math.ceil(Math.max(...surprisal.pitch_bits, 0)));
  const y = (p) => p.row * ROW + 6 + (1 - p.bits / top) * (ROW - 14);
  const highest = surprisal.pitch_bits.indexOf(Math.max(...surprisal.pitch_bits));
  const label = mean === null ? "no notes" : `${surprisal.pitch_bits.length} notes, ${mean.toFixed(1)} bits each on average; the most, ${surprisal.pitch_bits[highest].toFixed(1)}, at note ${highest + 1}`;
  const chart = svgElement("svg", { width, height: rows * ROW, viewBox: `0 0 ${width} ${rows * ROW}`, role: "img", "aria-label": `Surprisal per note, in bits: ${label}` });
  chart.append(svgElement("title", {}, `surprisal per note: ${label}`));
  for (let row = 0; row < rows; row++) {
    const base = row * ROW + ROW - 8;
    chart.append(svgElement("line", { class: "axis", x1: 0, x2: width, y1: base, y2: base }));
    chart.append(svgElement("line", { class: "grid", x1: 0, x2: width, y1: row * ROW + 6, y2: row * ROW + 6 }));
    chart.append(svgElement("text", { x: 2, y: row * ROW + 16 }, `${top} bits`));
    const line = points.filter((p) => p.row === row);
    chart.append(svgElement("polyline", { points: line.map((p) => `${p.x},${y(p)}`).join(" ") }));
  }
  for (const p of points) {
    const dot = svgElement("circle", { cx: p.x, cy: y(p), r: 3.5 });
    dot.append(svgElement("title", {}, `note ${p.k + 1}: ${p.bits.toFixed(1)} bits (its pitch), ${surprisal.step_bits[p.k].toFixed(1)} bits (its onset and pitch)`));
    dot.addEventListener("pointerenter", () => p.note.classList.add("surprised"));
    dot.addEventListener("pointerleave", () => p.note.classList.remove("surprised"));
    chart.append(dot);
  }
  figure.append(chart, caption);
}

function undoEdit(card) {
  if (card.versions.length < 2) return;
  card.versions.pop();
  showVersion(card);
  say(`melody ${card.number}: back to the version before`);
}

// While the audio plays, colour the note being heard: each drawn note (a piece of a note split
// at a barline or into tied values included) sounds from its start to its end, in quarters.
function follow(audio, score, melody) {
  const notes = [...score.querySelectorAll("g.note")].filter((n) => melody.note_times[n.id]);
  let lit = null;
  const tick = () => {
    const quarter = (audio.currentTime * melody.bpm) / 60;
    const note = notes.find((n) => {
      const [from, to] = melody.note_times[n.id];
      return quarter >= from && quarter < to;
    }) || null;
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
    item.addEventListener("click", () => showResult(entry.result, entry.link));
    list.append(item);
  }
}

async function uploadPrimer() {
  const file = $("primer").files[0];
  if (!file) return;
  say(`reading ${file.name}…`);
  try {
    const url = `/api/primer?name=${encodeURIComponent(file.name)}&model=${encodeURIComponent($("model").value)}`;
    const result = await api(url, { method: "POST", body: file, headers: { "Content-Type": "application/octet-stream" } });
    $("seed").value = result.seed;
    // the primer's key, meter, mode and pickup, where this model knows them, so the melody goes
    // on in them
    const carried = { key: result.tonic, meter: result.meter, mode: result.mode, pickup: result.pickup };
    for (const [name, value] of Object.entries(carried)) {
      const input = $("control-fields").querySelector(`[name=${name}]`);
      if (input && (input.tagName !== "SELECT" || [...input.options].some((o) => o.value === String(value)))) {
        input.value = value;
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
  if (!models.some((m) => m.usable)) {
    say("no usable model found (model.pth, runs/*/model.pth, pretrained/*/model.pth): run preprocess.py and train.py first", true);
    $("generate").disabled = true;
    return;
  }
  for (const model of models) {
    const option = new Option(model.usable ? model.id : `${model.id} (unusable)`, model.id);
    option.disabled = !model.usable;
    option.title = model.error || "";
    $("model").append(option);
  }
  $("model").value = models.find((m) => m.usable).id;
  drawControls();
  say("ready");
  if (readLink()) generate();
}

start();
