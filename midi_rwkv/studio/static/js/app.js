// The studio page: wires the piano roll, the controls, the candidate list and playback to the API.
// Bars are 0-based internally (as in the API) with an exclusive end; the page shows them from 1, inclusive.
// Three things can be written ("What to write", state.mode): bars of a track, a whole track again, or a new track.

import { api, token } from "./api.js";
import { GM_FAMILIES, GM_PROGRAMS, instrumentName } from "./gm.js";
import { Jam, expose } from "./jam.js";
import { Player } from "./player.js";
import { MAX_BARS, PianoRoll } from "./roll.js";

const POLL_MS = 150;
const CONTEXT_BARS = 2;
const DENSITY_MAX = 18;
const WHOLE_PLAY_BARS = 8; // a whole or new track plays from the first bar in view, for up to this many bars
const DEFAULT_PROGRAM = 33; // Electric Bass (finger)

const $ = (selector) => document.querySelector(selector);
const el = {
  roll: $("#roll"),
  rollWrap: $("#roll-wrap"),
  rollScroll: $("#roll-scroll"),
  openPrompt: $("#open-prompt"),
  fileInput: $("#file-input"),
  songName: $("#song-name"),
  songVersion: $("#song-version"),
  modes: [...document.querySelectorAll("#mode input[name=mode]")],
  modeNote: $("#mode-note"),
  trackRow: $("#track-row"),
  barsRow: $("#bars-row"),
  newFields: $("#new-fields"),
  newProgram: $("#new-program"),
  newDrums: $("#new-drums"),
  rollHint: $("#roll-hint"),
  densityHint: $("#density-hint"),
  trackSelect: $("#track-select"),
  barStart: $("#bar-start"),
  barEnd: $("#bar-end"),
  density: $("#density"),
  polyMin: $("#polyphony-min"),
  polyMax: $("#polyphony-max"),
  durations: [...document.querySelectorAll("#durations input[type=checkbox]")],
  controls: $("#controls"),
  controlsNote: $("#controls-note"),
  free: $("#free"),
  keepRegister: $("#keep-register"),
  followForm: $("#follow-form"),
  temperature: $("#temperature"),
  temperatureValue: $("#temperature-value"),
  k: $("#k"),
  style: $("#style"),
  seed: $("#seed"),
  generate: $("#generate"),
  regenerate: $("#regenerate"),
  cancel: $("#cancel"),
  progress: $("#progress"),
  jobStatus: $("#job-status"),
  candidates: $("#candidates"),
  candidatesEmpty: $("#candidates-empty"),
  playOriginal: $("#play-original"),
  playCandidate: $("#play-candidate"),
  stop: $("#stop"),
  tempo: $("#tempo"),
  undo: $("#undo"),
  redo: $("#redo"),
  export: $("#export"),
  history: $("#history"),
  error: $("#error"),
  summary: $("#selection-summary"),
  dropOverlay: $("#drop-overlay"),
};

const state = {
  song: null,
  mode: "bars", // what to write: "bars" | "track" | "new"
  selection: null, // {track, start, end}
  candidates: [], // in arrival order
  selectedCandidate: null, // id
  accepted: new Set(),
  rejected: new Set(), // ids rejected here: a later poll of the same job does not bring them back
  job: null, // {id, status, done, total}
  lastRequest: null,
  playing: null, // "original" | candidate id
  busy: 0,
  temperatures: null, // the engine's default per mode, from the server
};

const player = new Player();
const roll = new PianoRoll(el.roll, el.rollScroll, el.rollWrap, {
  onSelect: (selection, final) => setSelection(selection, { fromRoll: true, final }),
});

const jam = new Jam({ song: () => state.song, kept: (view) => setSong(view), showError, player });
expose(jam);

// ---- read-only helpers for browser tests ----

window.studio = Object.freeze({
  get song() {
    return state.song;
  },
  get candidates() {
    return state.candidates;
  },
  get scheduledNotes() {
    return player.scheduledNotes;
  },
  get selection() {
    return state.selection && { track: state.selection.track, bars: [state.selection.start, state.selection.end] };
  },
  get job() {
    return state.job;
  },
  get mode() {
    return state.mode;
  },
  get playing() {
    return player.playing;
  },
  /** Where to point for a drag: the page (client) coordinates of a track's lane at a bar counted from 1. */
  pointAt(track, bar) {
    const p = roll.pointAt(track, bar - 1);
    const r = el.roll.getBoundingClientRect();
    return { x: r.left + p.x, y: r.top + p.y };
  },
});

// ---- errors and busy state ----

function showError(error) {
  const message = typeof error === "string" ? error : error && error.message ? error.message : String(error);
  el.error.querySelector(".message").textContent = message;
  el.error.hidden = false;
}

function clearError() {
  el.error.querySelector(".message").textContent = "";
  el.error.hidden = true;
}

el.error.querySelector(".close").addEventListener("click", clearError);

async function guarded(action) {
  state.busy++;
  document.body.classList.add("busy");
  try {
    return await action();
  } catch (error) {
    showError(error);
    return undefined;
  } finally {
    if (--state.busy === 0) document.body.classList.remove("busy");
  }
}

window.addEventListener("unhandledrejection", (e) => {
  showError(e.reason);
  e.preventDefault();
});
window.addEventListener("error", (e) => {
  if (/ResizeObserver loop/.test(e.message || "")) return; // benign: a layout settled over two frames
  showError(e.message || "something went wrong in the page");
});

// ---- the song ----

function setSong(view, { fresh = false } = {}) {
  state.song = view;
  if (fresh) {
    stopPlayback();
    state.candidates = [];
    state.selectedCandidate = null;
    state.accepted.clear();
    state.lastRequest = null;
    roll.setGhost(null);
    // the contract's song view has no tempo; use one if the server adds it (quarter notes a minute)
    const qpm = [view.tempo, view.qpm].find((q) => typeof q === "number" && q >= 20 && q <= 300);
    if (qpm) el.tempo.value = String(Math.round(qpm));
  }
  el.openPrompt.hidden = true;
  el.songName.textContent = view.name;
  el.songName.title = view.name;
  el.songVersion.textContent = `version ${view.version}`;
  document.title = `${view.name} · midi-rwkv studio`;
  renderTracks();
  renderHistory();
  el.undo.disabled = !view.can_undo;
  el.redo.disabled = !view.can_redo;
  el.export.disabled = false;
  $("#jam-open").disabled = false;
  for (const id of ["#zoom-in", "#zoom-out", "#zoom-fit"]) $(id).disabled = false;
  const bars = view.bars.length;
  el.barStart.max = String(bars);
  el.barEnd.max = String(bars);
  roll.setSong(view);
  const previous = state.selection;
  const track = previous && previous.track < view.tracks.length ? previous.track : firstEditableTrack();
  const start = previous ? previous.start : 0;
  const end = previous ? previous.end : Math.min(bars, 4);
  setSelection({ track, start, end }, { final: true, scroll: fresh });
  renderMode();
}

function firstEditableTrack() {
  const found = state.song.tracks.find((t) => t.editable !== false && t.notes.length);
  return found ? found.index : 0;
}

function trackLabel(t) {
  const name = t.name && t.name.trim() ? t.name.trim() : `Track ${t.index + 1}`;
  const what = t.is_drum ? "drums" : instrumentName(t);
  return `${t.index}: ${name} (${what})${t.editable === false ? " (no notes)" : ""}`;
}

function renderTracks() {
  const tracks = state.song.tracks;
  const current = el.trackSelect.value;
  el.trackSelect.replaceChildren(
    ...tracks.map((t) => {
      const option = document.createElement("option");
      option.value = String(t.index);
      option.textContent = trackLabel(t);
      return option;
    }),
  );
  if (current !== "" && Number(current) < tracks.length) el.trackSelect.value = current;
}

function renderHistory() {
  const song = state.song;
  el.history.replaceChildren(
    ...song.history.map((h) => {
      const li = document.createElement("li");
      li.textContent = h.label;
      li.dataset.version = String(h.version);
      if (h.version === song.version) {
        li.classList.add("current");
        li.setAttribute("aria-current", "true");
      } else {
        li.classList.add(h.version < song.version ? "past" : "future");
        if (h.version > song.version) li.title = "undone: Redo brings it back";
      }
      return li;
    }),
  );
  const current = el.history.querySelector(".current");
  if (current) {
    // keep the current version in view inside the list only (scrollIntoView would scroll the side panel too)
    const list = el.history;
    const top = current.offsetTop - list.offsetTop;
    if (top < list.scrollTop || top + current.offsetHeight > list.scrollTop + list.clientHeight) {
      list.scrollTop = top - list.clientHeight / 2;
    }
  }
}

// ---- the selection ----

function clampSelection({ track, start, end }) {
  const bars = state.song ? state.song.bars.length : 0;
  const tracks = state.song ? state.song.tracks.length : 0;
  track = Math.min(Math.max(0, track | 0), Math.max(0, tracks - 1));
  start = Math.min(Math.max(0, start | 0), Math.max(0, bars - 1));
  end = Math.min(Math.max(start + 1, end | 0), bars);
  if (end - start > MAX_BARS) end = start + MAX_BARS;
  return { track, start, end };
}

function setSelection(selection, { fromRoll = false, final = true, scroll = false } = {}) {
  if (!state.song) return;
  const sel = clampSelection(selection);
  const changed = JSON.stringify(sel) !== JSON.stringify(state.selection);
  state.selection = sel;
  el.trackSelect.value = String(sel.track);
  renderBarFields(fromRoll);
  renderRoll();
  if (scroll && state.mode === "bars") roll.showBars(sel.start, sel.end);
  renderSummary();
  if (changed && final) updateControlsForTrack();
  updateButtons();
}

function renderSummary() {
  const sel = state.selection;
  if (!sel || !state.song) {
    el.summary.textContent = "";
    return;
  }
  const t = state.song.tracks[sel.track];
  const name = t ? (t.name && t.name.trim()) || `Track ${sel.track + 1}` : "";
  const count = state.song.bars.length;
  const bars = sel.end - sel.start === 1 ? `bar ${sel.start + 1}` : `bars ${sel.start + 1}–${sel.end}`;
  el.summary.replaceChildren();
  const strong = document.createElement("strong");
  if (state.mode === "bars") {
    strong.textContent = `${name}, ${bars}`;
    el.summary.append("Selected: ", strong, ` of ${count}`);
  } else if (state.mode === "track") {
    strong.textContent = name;
    el.summary.append("Whole track: ", strong, `, bars 1–${count}`);
  } else {
    strong.textContent = newTrackName();
    el.summary.append("New track: ", strong, `, bars 1–${count}`);
  }
}

/** The bar fields: the selection in bars mode; the whole piece (read only) when a whole track is written. */
function renderBarFields(force = false) {
  const sel = state.selection;
  if (!state.song || !sel) return;
  if (state.mode === "bars") {
    if (document.activeElement !== el.barStart || force) el.barStart.value = String(sel.start + 1);
    if (document.activeElement !== el.barEnd || force) el.barEnd.value = String(sel.end);
  } else {
    el.barStart.value = "1";
    el.barEnd.value = String(state.song.bars.length);
  }
  el.barStart.classList.remove("invalid");
  el.barEnd.classList.remove("invalid");
}

// ---- what to write: bars of a track, a whole track again, or a new track ----

const MODE_TEXT = {
  bars: {
    note: "Drag across a lane of the roll, or set the track and bars here.",
    hint: "Drag across a lane to choose bars to rewrite",
    empty: "Select bars, then Generate.",
    density: ["as original (6, or 6,8,…)", "One number for every bar, or one per selected bar (6,8,…)."],
  },
  track: {
    note: "Click a lane of the roll, or pick the track here: all its bars are written again; the other tracks stay.",
    hint: "Click a lane to choose the track to write again",
    empty: "Choose a track, then Generate.",
    density: ["as original (6, or 4,8)", "One number for every bar, or a range low,high (4,8)."],
  },
  new: {
    note: "The new part is written against all the tracks and shown in the dashed lane under them; Accept adds it.",
    hint: "The dashed lane at the bottom shows the new track",
    empty: "Choose an instrument, then Generate.",
    density: ["like the others (6, or 4,8)", "One number for every bar, or a range low,high (4,8)."],
  },
};

function isWhole(mode) {
  return mode === "track" || mode === "new";
}

function newProgram() {
  const value = Number(el.newProgram.value);
  return Number.isInteger(value) && value >= 0 && value <= 127 ? value : DEFAULT_PROGRAM;
}

function newTrackName() {
  return el.newDrums.checked ? "Drum kit" : GM_PROGRAMS[newProgram()];
}

// The engine's default temperature per mode, as the server reports it (GET /api/defaults): bars and whole tracks
// differ (inference/sampler.py). Until it answers, the slider's own starting value. A temperature the user chose
// is kept across modes.
function defaultTemperature(mode) {
  return state.temperatures ? state.temperatures[mode] : Number(el.temperature.defaultValue);
}

function setDefaultTemperatures(temperatures) {
  const untouched = Number(el.temperature.value) === defaultTemperature(state.mode);
  state.temperatures = temperatures;
  if (untouched) {
    el.temperature.value = String(defaultTemperature(state.mode));
    el.temperatureValue.textContent = Number(el.temperature.value).toFixed(2);
  }
}

function setMode(mode) {
  if (!MODE_TEXT[mode]) return;
  if (Number(el.temperature.value) === defaultTemperature(state.mode)) {
    el.temperature.value = String(defaultTemperature(mode));
    el.temperatureValue.textContent = Number(el.temperature.value).toFixed(2);
  }
  state.mode = mode;
  for (const radio of el.modes) radio.checked = radio.value === mode;
  renderMode();
}

function renderMode() {
  const mode = state.mode;
  const text = MODE_TEXT[mode];
  const song = state.song;
  el.trackRow.hidden = mode === "new";
  el.barsRow.hidden = mode === "new";
  el.newFields.hidden = mode !== "new";
  el.trackSelect.disabled = !song;
  el.barStart.disabled = !song || mode !== "bars";
  el.barEnd.disabled = !song || mode !== "bars";
  el.barsRow.title = mode === "track" ? "A whole track is written from its first bar to its last" : "";
  el.newProgram.disabled = el.newDrums.checked;
  el.modeNote.textContent = text.note;
  el.rollHint.textContent = text.hint;
  el.density.placeholder = text.density[0];
  el.densityHint.textContent = text.density[1];
  el.density.title =
    mode === "bars"
      ? "One number for every bar, or one per selected bar separated by commas; 0-18 (18 = 18 or more). Empty: as in the original bars."
      : "One number (about that many notes in every bar), or a range low,high; 0-18 (18 = 18 or more). Empty: " +
        (mode === "track" ? "as in the original track." : "like the song's other tracks.");
  el.free.disabled = mode !== "bars";
  el.free.closest("label").title = mode === "bars" ? "" : "Free generation is for bars of a track only";
  el.playOriginal.title =
    mode === "bars"
      ? "Play the selected bars with two bars around them (Space)"
      : `Play all tracks from the first bar in view, for up to ${WHOLE_PLAY_BARS} bars (Space)`;
  renderBarFields();
  renderSummary();
  updateControlsForTrack();
  renderRoll();
  renderCandidates();
  updateButtons();
}

/** A new-track candidate that is not (or no longer) a track of the song: shown and played as an extra track. */
function isPendingNew(c) {
  return c.mode === "new" && !(state.accepted.has(c.id) && c.track < state.song.tracks.length);
}

/** What the roll shows: the selection (or the whole lane), the selected candidate, the new track's lane. */
function renderRoll() {
  const song = state.song;
  if (!song) return;
  const sel = state.selection;
  const mode = state.mode;
  roll.setSelection(
    !sel || mode === "new" ? null : mode === "track" ? { track: sel.track, start: 0, end: song.bars.length, whole: true } : sel,
  );
  const c = candidateById(state.selectedCandidate);
  const pending = Boolean(c && isPendingNew(c));
  if (pending) {
    const number = state.candidates.indexOf(c) + 1;
    roll.setNewLane({ program: c.program, is_drum: c.is_drum, title: `New track · #${number}`, highlight: mode === "new" });
  } else if (mode === "new") {
    roll.setNewLane({ program: newProgram(), is_drum: el.newDrums.checked, title: "New track", highlight: true });
  } else {
    roll.setNewLane(null);
  }
  roll.setGhost(c ? { track: pending ? song.tracks.length : c.track, bars: c.bars, notes: c.notes } : null);
}

for (const radio of el.modes) {
  radio.addEventListener("change", () => {
    if (radio.checked) setMode(radio.value);
  });
}
el.newProgram.addEventListener("change", renderMode);
el.newDrums.addEventListener("change", renderMode);

function fillPrograms() {
  el.newProgram.replaceChildren(
    ...GM_FAMILIES.map((family, f) => {
      const group = document.createElement("optgroup");
      group.label = family;
      for (let p = f * 8; p < f * 8 + 8; p++) {
        const option = document.createElement("option");
        option.value = String(p);
        option.textContent = GM_PROGRAMS[p];
        option.title = `General MIDI program ${p + 1} (${p} counted from 0)`;
        group.append(option);
      }
      return group;
    }),
  );
  el.newProgram.value = String(DEFAULT_PROGRAM);
}

/**
 * The selection from the bar fields, once one is committed (change: Enter, leaving the field, the spin buttons).
 * A first bar past the last one moves the last one along (keeping the span's length), and the other way round.
 */
function selectionFromInputs(changed) {
  if (!state.song || !state.selection) return;
  const bars = state.song.bars.length;
  const input = changed === "start" ? el.barStart : el.barEnd;
  const value = parseInt(input.value, 10);
  if (!Number.isInteger(value) || value < 1 || value > bars) {
    input.classList.add("invalid");
    showError(`bars are numbered 1 to ${bars}`);
    return;
  }
  const old = state.selection;
  const width = old.end - old.start;
  let start = old.start;
  let end = old.end;
  if (changed === "start") {
    start = value - 1;
    if (end <= start) end = Math.min(bars, start + width);
    if (end - start > MAX_BARS) end = start + MAX_BARS;
  } else {
    end = value;
    if (start >= end) start = Math.max(0, end - width);
    if (end - start > MAX_BARS) start = end - MAX_BARS;
  }
  setSelection({ track: Number(el.trackSelect.value), start, end }, { fromRoll: true, scroll: true });
}

el.trackSelect.addEventListener("change", () => {
  if (!state.selection) return;
  setSelection({ ...state.selection, track: Number(el.trackSelect.value) });
});
el.barStart.addEventListener("change", () => selectionFromInputs("start"));
el.barEnd.addEventListener("change", () => selectionFromInputs("end"));
for (const input of [el.barStart, el.barEnd]) {
  input.addEventListener("input", () => input.classList.remove("invalid"));
  input.addEventListener("keydown", (e) => {
    if (e.key === "Enter") input.dispatchEvent(new Event("change"));
  });
}

// ---- controls ----

function selectedTrack() {
  return state.song && state.selection ? state.song.tracks[state.selection.track] : null;
}

/** Whether what is written is drums: the new track's box, else the selected track. */
function writingDrums() {
  if (state.mode === "new") return el.newDrums.checked;
  const t = selectedTrack();
  return Boolean(t && t.is_drum);
}

function updateControlsForTrack() {
  const mode = state.mode;
  const drum = writingDrums();
  const free = el.free.checked && mode === "bars";
  el.controls.disabled = free;
  for (const input of [el.polyMin, el.polyMax, ...el.durations]) input.disabled = free || drum;
  const empty = { bars: "as in the original bars", track: "as in the original track", new: "like the song's other tracks" }[mode];
  el.controlsNote.textContent = free
    ? "Free: the model gets no bar controls and chooses density, polyphony and note values."
    : drum
      ? `${mode === "new" ? "Drums" : "Drum track"}: only notes per bar applies. Empty: ${empty}.`
      : `Empty fields and no note value ticked: ${empty}.`;
}

el.free.addEventListener("change", updateControlsForTrack);
el.temperature.addEventListener("input", () => {
  el.temperatureValue.textContent = Number(el.temperature.value).toFixed(2);
});

function intField(input, label, low, high) {
  const text = input.value.trim();
  if (text === "") return null;
  const value = Number(text);
  if (!Number.isInteger(value) || value < low || value > high) {
    input.classList.add("invalid");
    input.focus();
    throw new Error(`${label} must be a whole number from ${low} to ${high}`);
  }
  return value;
}

/**
 * The generate request from the form, checked; throws an Error with a readable message. By mode: bars of a track
 * ({track, bars, free}), the whole track again ({track}), or a new track ({program, drums}).
 */
function readRequest() {
  for (const input of [el.density, el.polyMin, el.polyMax, el.k, el.seed]) input.classList.remove("invalid");
  const mode = state.mode;
  const sel = state.selection;
  if (!state.song || (mode !== "new" && !sel)) throw new Error("open a song and select bars first");
  const request = { mode };
  if (mode === "new") {
    request.program = newProgram();
    request.drums = el.newDrums.checked;
  } else {
    const t = state.song.tracks[sel.track];
    if (t && t.editable === false) throw new Error(`track ${sel.track} has no notes the model can read: choose another`);
    request.track = sel.track;
    if (mode === "bars") request.bars = [sel.start, sel.end];
  }
  Object.assign(request, {
    n: intField(el.k, "Candidates", 1, 8) ?? 4,
    temperature: Number(el.temperature.value),
    register: el.keepRegister.checked ? "keep" : "free",
    structure: el.followForm.checked ? "follow" : "vary", // off: new ideas that only lean on the form
    density: null,
    polyphony: null,
    durations: null,
    style: el.style.value || null,
    seed: intField(el.seed, "Seed", 0, 2 ** 31 - 1),
  });
  if (mode === "bars") {
    request.free = el.free.checked;
    if (request.free) return request;
  }

  const densityText = el.density.value.trim();
  if (densityText && isWhole(mode)) {
    // one number, or a range "low,high" (also "low-high" or "low high")
    const m = /^(\d+)(?:\s*(?:[,;–-]|\s)\s*(\d+))?$/.exec(densityText);
    const values = m ? [Number(m[1])].concat(m[2] === undefined ? [] : [Number(m[2])]) : [];
    const bad = !m || values.some((v) => v > DENSITY_MAX);
    const reversed = !bad && values.length === 2 && values[0] > values[1];
    if (bad || reversed) {
      el.density.classList.add("invalid");
      el.density.focus();
      throw new Error(
        reversed
          ? `notes per bar: a range goes from low to high (${values[1]},${values[0]}, not ${values[0]},${values[1]})`
          : `notes per bar: one number, or a range low,high (such as 4,8), from 0 to ${DENSITY_MAX} (${DENSITY_MAX} means ${DENSITY_MAX} or more)`,
      );
    }
    request.density = values;
  } else if (densityText) {
    const nBars = sel.end - sel.start;
    const values = densityText.split(/[\s,;]+/).filter(Boolean).map(Number);
    const bad = values.some((v) => !Number.isInteger(v) || v < 0 || v > DENSITY_MAX);
    if (bad || (values.length !== 1 && values.length !== nBars)) {
      el.density.classList.add("invalid");
      el.density.focus();
      throw new Error(
        bad
          ? `notes per bar: whole numbers from 0 to ${DENSITY_MAX} (${DENSITY_MAX} means ${DENSITY_MAX} or more)`
          : `notes per bar: one number for all bars, or ${nBars} (one per selected bar), not ${values.length}`,
      );
    }
    request.density = values;
  }
  if (!writingDrums()) {
    let low = intField(el.polyMin, "Polyphony minimum", 1, 6);
    let high = intField(el.polyMax, "Polyphony maximum", 1, 6);
    if (low !== null || high !== null) {
      low = low ?? 1;
      high = high ?? 6;
      if (low > high) {
        el.polyMax.classList.add("invalid");
        throw new Error("polyphony: the minimum must not be above the maximum");
      }
      request.polyphony = [low, high];
    }
    const flags = el.durations.map((box) => box.checked);
    if (flags.some(Boolean)) request.durations = flags;
  }
  return request;
}

// ---- generating ----

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function generate(request) {
  if (!state.song) return;
  if (state.job && isRunning(state.job)) return;
  clearError();
  const song = state.song;
  const answer = await guarded(() => api.generate(song.id, request));
  if (!answer) return;
  state.lastRequest = request;
  state.candidates = [];
  state.selectedCandidate = null;
  renderRoll();
  renderCandidates();
  state.job = { id: answer.job, status: "running", done: 0, total: request.n, songId: song.id };
  renderJob();
  updateButtons();
  poll(answer.job);
}

function isRunning(job) {
  return !["done", "cancelled", "error"].includes(job.status);
}

async function poll(jobId) {
  let first = true;
  while (state.job && state.job.id === jobId) {
    if (!first) await sleep(POLL_MS);
    first = false;
    if (!state.job || state.job.id !== jobId) return;
    let view;
    try {
      view = await api.job(jobId);
    } catch (error) {
      showError(error);
      state.job = { ...state.job, status: "error" };
      renderJob();
      updateButtons();
      return;
    }
    if (!state.job || state.job.id !== jobId) return;
    takeJob(view);
    if (!isRunning(view)) return;
  }
}

function takeJob(view) {
  state.job = { ...state.job, status: view.status, done: view.done, total: view.total, error: view.error };
  const known = new Set(state.candidates.map((c) => c.id));
  let added = false;
  for (const c of view.candidates || []) {
    if (!known.has(c.id) && !state.rejected.has(c.id)) {
      state.candidates.push(c);
      added = true;
    }
  }
  if (added) {
    if (!state.selectedCandidate && state.candidates.length) selectCandidate(state.candidates[0].id, { quiet: true });
    renderCandidates();
  }
  if (view.status === "error") showError(view.error || "the generation failed");
  renderJob();
  updateButtons();
}

function renderJob() {
  const job = state.job;
  if (!job) {
    el.progress.hidden = true;
    el.cancel.hidden = true;
    el.jobStatus.textContent = "";
    return;
  }
  const running = isRunning(job);
  el.progress.hidden = false;
  el.progress.classList.toggle("running", running);
  el.progress.setAttribute("aria-valuemax", String(job.total));
  el.progress.setAttribute("aria-valuenow", String(job.done));
  el.progress.dataset.done = String(job.done);
  el.progress.dataset.total = String(job.total);
  el.progress.querySelector(".bar").style.width = `${job.total ? (100 * job.done) / job.total : 0}%`;
  el.progress.querySelector(".text").textContent = `${job.done}/${job.total}`;
  el.cancel.hidden = !running;
  el.cancel.disabled = !running;
  el.jobStatus.textContent = running
    ? `Generating… ${job.done} of ${job.total} candidates ready.`
    : job.status === "done"
      ? `Done: ${job.done} candidate${job.done === 1 ? "" : "s"}.`
      : job.status === "cancelled"
        ? `Cancelled after ${job.done} of ${job.total}.`
        : "The generation failed.";
}

el.generate.addEventListener("click", () => {
  let request;
  try {
    request = readRequest();
  } catch (error) {
    showError(error);
    return;
  }
  generate(request);
});
el.regenerate.addEventListener("click", () => {
  if (state.lastRequest) generate(state.lastRequest);
});
el.cancel.addEventListener("click", async () => {
  const job = state.job;
  if (!job || !isRunning(job)) return;
  el.cancel.disabled = true;
  const view = await guarded(() => api.cancel(job.id));
  if (view && state.job && state.job.id === job.id) takeJob(view);
});

// ---- candidates ----

function parseControls(text) {
  const m = /density ([^\s\]]+)(?: poly ([^\s\]]+))?(?: dur ([^\s\]]+))?/.exec(text || "");
  return m ? { density: m[1], poly: m[2] || "", dur: m[3] || "" } : null;
}

function controlsCell(text, other) {
  const td = document.createElement("td");
  const mine = parseControls(text);
  if (!mine) {
    td.textContent = text || "";
    return td;
  }
  const theirs = parseControls(other);
  const parts = [
    ["density", mine.density],
    ["poly", mine.poly],
    ["dur", mine.dur],
  ].filter(([, v]) => v);
  parts.forEach(([key, value], i) => {
    const span = document.createElement("span");
    span.textContent = value;
    if (theirs && theirs[key] !== value) span.className = "diff";
    if (i) td.append(" · ");
    td.append(span);
  });
  return td;
}

function isWholeCandidate(c) {
  return c.mode === "track" || c.mode === "new";
}

function errorClass(c) {
  // a whole or new track has one row of track controls; bars have one row a bar
  const bars = isWholeCandidate(c) ? Math.max(1, c.requested.length) : Math.max(1, c.bars[1] - c.bars[0]);
  if (c.control_error === 0) return "good";
  return c.control_error <= bars * 1.5 ? "fair" : "poor";
}

// Items are kept per candidate id and updated in place, so an element found once stays valid (and focused).
const candidateItems = new Map();

function createCandidateItem(c) {
  const li = document.createElement("li");
  li.className = "candidate";
  li.dataset.id = c.id;
  li.tabIndex = 0;

  const head = document.createElement("div");
  head.className = "head";
  const name = document.createElement("span");
  name.className = "name";
  const whole = isWholeCandidate(c);
  const kind = document.createElement("span");
  kind.className = `kind ${c.mode === "new" ? "new" : ""}`;
  kind.textContent = c.mode === "new" ? "new track" : "whole track";
  kind.hidden = !whole;
  const meta = document.createElement("span");
  meta.className = "meta";
  meta.textContent = `seed ${c.seed} · ${c.notes.length} notes`;
  meta.title = `generated in ${Number(c.seconds || 0).toFixed(2)} s`;
  const err = document.createElement("span");
  err.className = `err ${errorClass(c)}`;
  err.title = "Control error: how far the realised bars are from the requested controls (0 = all honoured)";
  err.textContent = `error ${Number(c.control_error).toLocaleString(undefined, { maximumFractionDigits: 2 })}`;
  head.append(name, kind, meta, err);

  const what = document.createElement("div");
  what.className = "what";
  what.hidden = !whole;

  const flags = document.createElement("div");
  flags.className = "flags";
  const badge = document.createElement("span");
  badge.className = "badge";
  badge.textContent = "✓ accepted";
  flags.append(badge);
  if (c.form) {
    const form = document.createElement("span");
    form.className = "form-note";
    form.textContent = c.form.replace(/^form: /, "");
    form.title = "What the song's form contributed (switch: Follow the song's form)";
    flags.append(" ", form);
  }
  if (c.stopped !== "done") {
    const warn = document.createElement("span");
    warn.className = "warn";
    warn.textContent = `stopped early (${c.stopped}): some bars may be missing`;
    flags.append(" ", warn);
  }

  const table = document.createElement("table");
  const thead = document.createElement("tr");
  for (const text of [whole ? "bars" : "bar", "requested", "realised"]) {
    const th = document.createElement("th");
    th.textContent = text;
    thead.append(th);
  }
  table.append(thead);
  const rows = Math.max(c.requested.length, c.realised.length);
  for (let r = 0; r < rows; r++) {
    const tr = document.createElement("tr");
    const bar = document.createElement("td");
    bar.className = "bar";
    bar.textContent = whole ? `${c.bars[0] + 1}–${c.bars[1]}` : String(c.bars[0] + r + 1);
    tr.append(bar, controlsCell(c.requested[r], null), controlsCell(c.realised[r], c.requested[r]));
    table.append(tr);
  }

  const actions = document.createElement("div");
  actions.className = "actions";
  const button = (cls, text, title, handler) => {
    const b = document.createElement("button");
    b.type = "button";
    b.className = cls;
    b.textContent = text;
    b.title = title;
    b.addEventListener("click", (e) => {
      e.stopPropagation();
      handler();
    });
    actions.append(b);
    return b;
  };
  const playTitle = whole
    ? `Play all tracks with this candidate${c.mode === "new" ? " as the new track" : ""}, from the first bar in view (up to ${WHOLE_PLAY_BARS} bars)`
    : "Play this candidate in place, with two bars around it";
  button("play", "▶ Play", playTitle, () => (state.playing === c.id ? stopPlayback() : playCandidate(c.id)));
  const acceptTitle =
    c.mode === "track"
      ? "Replace the whole track with this candidate (a new version; Undo takes it back)"
      : "Write this candidate into the song (a new version; Undo takes it back)";
  button("accept", "Accept", acceptTitle, () => accept(c.id));
  button("reject", "Reject", "Remove this candidate from the list", () => reject(c.id));

  li.append(head, what, flags, table, actions);
  li.addEventListener("click", () => selectCandidate(c.id));
  li.addEventListener("keydown", (e) => {
    if (e.target !== li) return;
    if (e.key === "Enter" || e.key === " ") {
      e.preventDefault();
      selectCandidate(c.id);
    } else if (e.key === "ArrowDown" || e.key === "ArrowUp") {
      e.preventDefault();
      const sibling = e.key === "ArrowDown" ? li.nextElementSibling : li.previousElementSibling;
      if (sibling) sibling.focus();
    }
  });
  return li;
}

function updateCandidateItem(li, c, i) {
  const selected = c.id === state.selectedCandidate;
  const accepted = state.accepted.has(c.id);
  li.classList.toggle("selected", selected);
  li.classList.toggle("accepted", accepted);
  li.setAttribute("aria-selected", String(selected));
  const kind = c.mode === "new" ? ", new track" : c.mode === "track" ? ", whole track" : "";
  li.setAttribute("aria-label", `Candidate ${i + 1}${kind}, seed ${c.seed}, control error ${c.control_error}`);
  li.querySelector(".name").textContent = `#${i + 1}`;
  const what = li.querySelector(".what");
  const accept = li.querySelector("button.accept");
  if (c.mode === "new") {
    const pending = !state.song || isPendingNew(c);
    const where = pending ? `Accept adds it as track ${state.song ? state.song.tracks.length : c.track}` : `added as track ${c.track}`;
    what.textContent = `${instrumentName(c)}, bars ${c.bars[0] + 1}–${c.bars[1]} · ${where}`;
    // once in the song, accepting it again would add a second copy
    accept.disabled = !pending;
    accept.title = pending
      ? "Add this part to the song as a new track under the others (a new version; Undo takes it back)"
      : `Already in the song as track ${c.track} (Undo takes it out)`;
  } else if (c.mode === "track") {
    const t = state.song && state.song.tracks[c.track];
    const name = t ? (t.name && t.name.trim()) || `Track ${c.track + 1}` : `Track ${c.track + 1}`;
    what.textContent = `${c.track}: ${name}, all bars (${c.bars[0] + 1}–${c.bars[1]}) written again`;
  }
  li.querySelector(".badge").hidden = !accepted;
  li.querySelector(".flags").hidden = !accepted && c.stopped === "done";
  const play = li.querySelector("button.play");
  const playing = state.playing === c.id;
  play.textContent = playing ? "■ Stop" : "▶ Play";
  play.setAttribute("aria-pressed", String(playing));
}

function renderCandidates() {
  const ids = new Set(state.candidates.map((c) => c.id));
  for (const [id, li] of candidateItems) {
    if (!ids.has(id)) {
      li.remove();
      candidateItems.delete(id);
    }
  }
  state.candidates.forEach((c, i) => {
    let li = candidateItems.get(c.id);
    if (!li) {
      li = createCandidateItem(c);
      candidateItems.set(c.id, li);
    }
    updateCandidateItem(li, c, i);
    if (el.candidates.children[i] !== li) el.candidates.insertBefore(li, el.candidates.children[i] || null);
  });
  el.candidatesEmpty.hidden = state.candidates.length > 0;
  el.candidatesEmpty.textContent =
    state.job && isRunning(state.job)
      ? "Candidates appear here as they arrive."
      : state.lastRequest
        ? "No candidates left: Generate or Regenerate for more."
        : `${MODE_TEXT[state.mode].empty} Candidates appear here as they arrive.`;
}

function candidateById(id) {
  return state.candidates.find((c) => c.id === id) || null;
}

function selectCandidate(id, { quiet = false } = {}) {
  const c = candidateById(id);
  state.selectedCandidate = c ? c.id : null;
  if (c && c.mode === "track") {
    // a whole track: select that track, keep the bars and the view
    if (!quiet && state.selection) setSelection({ ...state.selection, track: c.track });
  } else if (c && c.mode !== "new") {
    if (!quiet) setSelection({ track: c.track, start: c.bars[0], end: c.bars[1] }, { scroll: true });
    else roll.showBars(c.bars[0], c.bars[1]);
  }
  renderRoll();
  renderCandidates();
  updateButtons();
}

function reject(id) {
  if (state.playing === id) stopPlayback();
  state.rejected.add(id);
  const index = state.candidates.findIndex((c) => c.id === id);
  state.candidates = state.candidates.filter((c) => c.id !== id);
  if (state.selectedCandidate === id) {
    const next = state.candidates[Math.min(index, state.candidates.length - 1)];
    selectCandidate(next ? next.id : null, { quiet: true });
  } else {
    renderCandidates();
  }
  const item = el.candidates.querySelectorAll(".candidate")[Math.min(index, state.candidates.length - 1)];
  if (item) item.focus({ preventScroll: true });
  updateButtons();
}

async function accept(id) {
  if (!state.song) return;
  stopPlayback();
  const song = state.song;
  const view = await guarded(() => api.accept(song.id, id));
  if (!view) return;
  clearError();
  state.accepted.add(id);
  state.selectedCandidate = id;
  setSong(view);
  selectCandidate(id, { quiet: true });
  const c = candidateById(id);
  // a new track joins the song: select it, so that it can be played, rewritten or written again
  if (c && c.mode === "new" && c.track < view.tracks.length && state.selection) {
    setSelection({ ...state.selection, track: c.track });
  }
}

// ---- undo, redo, export, open ----

async function change(action) {
  if (!state.song || state.busy) return;
  const allowed = action === "undo" ? state.song.can_undo : state.song.can_redo;
  if (!allowed) return;
  stopPlayback();
  const song = state.song;
  const view = await guarded(() => api[action](song.id));
  if (view) {
    clearError();
    setSong(view);
  }
}

el.undo.addEventListener("click", () => change("undo"));
el.redo.addEventListener("click", () => change("redo"));

el.export.addEventListener("click", () =>
  guarded(async () => {
    if (!state.song) return;
    const { blob, filename } = await api.exportSong(state.song.id, state.song.name);
    const url = URL.createObjectURL(blob);
    const a = document.createElement("a");
    a.href = url;
    a.download = filename;
    a.hidden = true;
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10_000);
    el.jobStatus.textContent = `Exported ${filename}.`;
  }),
);

async function openFile(file) {
  if (!file) return;
  if (file.size > 8 * 1024 * 1024) {
    showError(`${file.name} is too large (at most 8 MB)`);
    return;
  }
  clearError();
  const view = await guarded(async () => api.upload(await file.arrayBuffer(), file.name));
  if (!view) return;
  cancelJob();
  state.selection = null;
  setSong(view, { fresh: true });
  const url = new URL(location.href);
  url.searchParams.set("song", view.id);
  history.replaceState(null, "", url);
}

el.fileInput.addEventListener("change", () => {
  const file = el.fileInput.files && el.fileInput.files[0];
  openFile(file).finally(() => {
    el.fileInput.value = "";
  });
});

let dragDepth = 0;
const hasFiles = (e) => e.dataTransfer && [...e.dataTransfer.types].includes("Files");
window.addEventListener("dragenter", (e) => {
  if (!hasFiles(e)) return;
  e.preventDefault();
  dragDepth++;
  el.dropOverlay.hidden = false;
});
window.addEventListener("dragover", (e) => {
  if (!hasFiles(e)) return;
  e.preventDefault();
  e.dataTransfer.dropEffect = "copy";
});
window.addEventListener("dragleave", (e) => {
  if (!hasFiles(e)) return;
  dragDepth = Math.max(0, dragDepth - 1);
  if (!dragDepth) el.dropOverlay.hidden = true;
});
window.addEventListener("drop", (e) => {
  if (!hasFiles(e)) return;
  e.preventDefault();
  dragDepth = 0;
  el.dropOverlay.hidden = true;
  const file = e.dataTransfer.files[0];
  if (file) openFile(file);
});

function cancelJob() {
  const job = state.job;
  state.job = null;
  if (job && isRunning(job)) api.cancel(job.id).catch(() => {});
  renderJob();
}

// ---- playback ----

function tempo() {
  const value = Number(el.tempo.value);
  return Number.isFinite(value) && value >= 20 && value <= 300 ? value : 100;
}

function playRange(bars) {
  const all = state.song.bars;
  const first = Math.max(0, bars[0] - CONTEXT_BARS);
  const last = Math.min(all.length, bars[1] + CONTEXT_BARS);
  return { from: all[first].start, to: all[last - 1].end };
}

/** From the first bar in view (the one mostly in view), for up to WHOLE_PLAY_BARS bars. */
function viewRange() {
  const all = state.song.bars;
  const first = roll.firstBarInView();
  const last = Math.min(all.length, first + WHOLE_PLAY_BARS);
  return { from: all[first].start, to: all[last - 1].end };
}

async function startPlayback(kind, tracks, { from, to }) {
  state.playing = kind;
  updateButtons();
  renderCandidates();
  try {
    await player.play({
      tracks,
      from,
      to,
      qpm: tempo(),
      onCursor: (beat) => roll.setCursor(beat),
      onEnd: () => {
        state.playing = null;
        roll.setCursor(null);
        updateButtons();
        renderCandidates();
      },
    });
    if (player.fallback) {
      el.jobStatus.textContent = "The browser keeps audio suspended: the cursor moves, but there is no sound.";
    }
  } catch (error) {
    state.playing = null;
    updateButtons();
    renderCandidates();
    showError(error);
  }
}

function playOriginal() {
  if (!state.song || !state.selection || !state.song.bars.length) return;
  const sel = state.selection;
  const range = state.mode === "bars" ? playRange([sel.start, sel.end]) : viewRange();
  startPlayback("original", state.song.tracks, range);
}

function playCandidate(id) {
  const c = candidateById(id || state.selectedCandidate);
  if (!c || !state.song) return;
  if (state.selectedCandidate !== c.id) selectCandidate(c.id);
  const song = state.song;
  const bars = song.bars;
  const a = bars[c.bars[0]].start;
  const b = bars[Math.min(c.bars[1], bars.length) - 1].end;
  // a new track plays after all the others (so on the next free channel; drums on channel 10)
  const tracks = isPendingNew(c)
    ? [...song.tracks, { index: song.tracks.length, name: "New track", program: c.program, is_drum: c.is_drum, notes: c.notes }]
    : song.tracks.map((t) =>
        t.index === c.track
          ? { ...t, notes: t.notes.filter((n) => n[0] < a - 1e-9 || n[0] >= b - 1e-9).concat(c.notes) }
          : t,
      );
  startPlayback(c.id, tracks, isWholeCandidate(c) ? viewRange() : playRange(c.bars));
}

function stopPlayback() {
  player.stop();
  state.playing = null;
  roll.setCursor(null);
  updateButtons();
}

el.playOriginal.addEventListener("click", () => (state.playing === "original" ? stopPlayback() : playOriginal()));
el.playCandidate.addEventListener("click", () => playCandidate());
el.stop.addEventListener("click", () => {
  stopPlayback();
  renderCandidates();
});

// ---- buttons and keys ----

function updateButtons() {
  const song = state.song;
  const running = Boolean(state.job && isRunning(state.job));
  el.generate.disabled = !song || (state.mode !== "new" && !state.selection) || running;
  el.generate.textContent = running ? "Generating…" : "Generate";
  el.regenerate.disabled = !song || !state.lastRequest || running;
  el.playOriginal.disabled = !song || !song.bars.length;
  el.playOriginal.textContent = state.playing === "original" ? "■ Stop original" : "▶ Play original";
  el.playCandidate.disabled = !song || !candidateById(state.selectedCandidate);
  el.stop.disabled = !state.playing;
  if (song) {
    el.undo.disabled = !song.can_undo;
    el.redo.disabled = !song.can_redo;
  }
}

function typing(target) {
  if (!target || !target.tagName) return false;
  if (target.tagName === "TEXTAREA" || target.isContentEditable) return true;
  return target.tagName === "INPUT" && !["checkbox", "radio", "range", "button", "file"].includes(target.type);
}

document.addEventListener("keydown", (e) => {
  const mod = e.ctrlKey || e.metaKey;
  if (mod && !e.altKey && (e.key === "z" || e.key === "Z") && !typing(e.target)) {
    e.preventDefault();
    change(e.shiftKey ? "redo" : "undo");
    return;
  }
  if (mod && !e.altKey && (e.key === "y" || e.key === "Y") && !typing(e.target)) {
    e.preventDefault();
    change("redo");
    return;
  }
  if (e.key === "Escape" && state.playing) {
    stopPlayback();
    renderCandidates();
    return;
  }
  if (e.key === " " && !mod && (e.target === document.body || e.target === el.roll)) {
    e.preventDefault();
    if (state.playing) stopPlayback();
    else if (state.selectedCandidate) playCandidate();
    else playOriginal();
    renderCandidates();
  }
});

el.roll.addEventListener("keydown", (e) => {
  if (!state.song || !state.selection) return;
  const sel = state.selection;
  const width = sel.end - sel.start;
  let next = null;
  switch (e.key) {
    case "ArrowLeft":
      next = e.shiftKey ? { ...sel, end: Math.max(sel.start + 1, sel.end - 1) } : { ...sel, start: sel.start - 1, end: sel.start - 1 + width };
      if (!e.shiftKey && sel.start === 0) next = sel;
      break;
    case "ArrowRight":
      next = e.shiftKey
        ? { ...sel, end: sel.end + 1 }
        : sel.end < state.song.bars.length
          ? { ...sel, start: sel.start + 1, end: sel.end + 1 }
          : sel;
      break;
    case "ArrowUp":
      next = { ...sel, track: Math.max(0, sel.track - 1) };
      break;
    case "ArrowDown":
      next = { ...sel, track: Math.min(state.song.tracks.length - 1, sel.track + 1) };
      break;
    case "+":
    case "=":
      roll.zoomBy(1.25);
      break;
    case "-":
    case "_":
      roll.zoomBy(0.8);
      break;
    default:
      return;
  }
  e.preventDefault();
  if (next) setSelection(next, { scroll: true });
});

$("#zoom-in").addEventListener("click", () => roll.zoomBy(1.25));
$("#zoom-out").addEventListener("click", () => roll.zoomBy(0.8));
$("#zoom-fit").addEventListener("click", () => roll.fit());
$("#open-button").addEventListener("click", () => el.fileInput.click());

// ---- start ----

async function start() {
  fillPrograms();
  const checked = el.modes.find((radio) => radio.checked);
  setMode(checked ? checked.value : "bars"); // a reload may keep the browser's choice
  updateControlsForTrack();
  updateButtons();
  if (!token) {
    showError("this page needs the link that `midi-rwkv studio` printed (it carries ?token=…): open that link");
    el.openPrompt.hidden = false;
    return;
  }
  const songId = new URLSearchParams(location.search).get("song");
  const defaults = guarded(async () => {
    const answer = await api.defaults();
    setDefaultTemperatures(answer.temperature);
    el.followForm.checked = answer.structure === "follow"; // the engine's default, from the server
  });
  const styles = guarded(async () => {
    const { styles: names } = await api.styles();
    for (const name of names) {
      const option = document.createElement("option");
      option.value = name;
      option.textContent = name;
      el.style.append(option);
    }
  });
  if (songId) {
    const view = await guarded(() => api.song(songId));
    if (view) setSong(view, { fresh: true });
    else el.openPrompt.hidden = false;
  } else {
    el.openPrompt.hidden = false;
  }
  await Promise.all([defaults, styles]);
  document.body.dataset.ready = "true";
}

start();
