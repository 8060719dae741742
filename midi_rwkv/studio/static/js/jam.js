// The Jam view: play along with the model (docs/studio.md, "Jam"; the API in docs/studio-api.md, /jam/...).
// The page keeps the take's clock. You play with the computer keyboard or a Web MIDI device, or a track of the song
// plays for you; when a bar ends, the page sends it whole (/jam/bar). The server writes the bar after next of every
// part, and the page polls the events (/jam/events?after=N) and queues each part's bar before the bar starts; the
// queued notes go to the synth a little ahead of the audio clock (as player.js does), so its voice limit drops none.

import { ApiError, token } from "./api.js";
import { GM_PROGRAMS } from "./gm.js";
import { Player } from "./player.js";

const POLL_MS = 80;
const TICK_MS = 20;
const LOOKAHEAD_S = 0.3; // notes starting within this much of now go to the synth
const EARLY_Q = 1 / 24; // quarter notes before a bar line that still count as its downbeat (as the engine counts)
const MIN_Q = 1 / 48;
const PLAYER_CHANNEL = 0;
// a row of the computer keyboard as a piano from C: white keys on A S D F G H J K L ;, black keys above them
const KEYS = ["a", "w", "s", "e", "d", "f", "t", "g", "y", "h", "u", "j", "k", "o", "l", "p", ";", "'"];

const $ = (selector) => document.querySelector(selector);

async function call(method, path, json) {
  const init = { method, headers: { "X-Studio-Token": token }, cache: "no-store" };
  if (json !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(json);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch {
    throw new ApiError("cannot reach the studio server: is `midi-rwkv studio` still running?", 0);
  }
  let body = null;
  try {
    body = await response.json();
  } catch {
    // handled below
  }
  if (!response.ok) throw new ApiError((body && body.error) || `the server answered ${response.status}`, response.status);
  return body;
}

function typing(target) {
  if (!target || !target.tagName) return false;
  if (["TEXTAREA", "SELECT"].includes(target.tagName) || target.isContentEditable) return true;
  return target.tagName === "INPUT" && !["checkbox", "radio", "range", "button", "file"].includes(target.type);
}

function option(value, text) {
  const o = document.createElement("option");
  o.value = String(value);
  o.textContent = text;
  return o;
}

export class Jam {
  /** `host`: {song() -> the song view, kept(view), showError(error), player (the studio's Player)}. */
  constructor(host) {
    this.host = host;
    this.player = host.player;
    this.el = {
      view: $("#jam"), open: $("#jam-open"), close: $("#jam-close"), start: $("#jam-start"), stop: $("#jam-stop"),
      keep: $("#jam-keep"), who: $("#jam-player"), program: $("#jam-program"), from: $("#jam-from"),
      tracks: $("#jam-tracks"), news: [...document.querySelectorAll(".jam-new")], tempo: $("#jam-tempo"),
      metre: $("#jam-metre"), structure: $("#jam-structure"), click: $("#jam-click"), midi: $("#jam-midi"),
      parts: $("#jam-parts"), status: $("#jam-status"), octave: $("#jam-octave"),
    };
    this.scheduled = []; // {bar, track, notes, at, start, qpm}: each part's bar as it was queued (read by tests)
    this.reset();
    this.octave = 60;
    this.bind();
  }

  reset() {
    this.playing = false;
    this.id = null; // the song the take belongs to
    this.first = 0; // the take's first live bar
    this.bars = new Map(); // bar -> {t: start (clock seconds), seconds, quarters, qpm, metre}
    this.nextToSend = 0;
    this.after = 0; // the last event read
    this.queue = []; // audio events {ch, pitch, velocity, on, off} in clock seconds
    this.held = new Map(); // pitch -> {on, velocity}
    this.played = []; // finished player notes {pitch, on, off, velocity}
    this.sent = [];
    this.late = 0;
    this.channels = new Map(); // track -> channel
    this.sending = Promise.resolve();
    this.songTrack = null; // a song track that plays for the player
  }

  // ---- the view ----

  bind() {
    const e = this.el;
    for (const select of [e.program, ...e.news]) {
      const none = select === e.program ? [] : [option("", "none"), option("drums", "Drums")];
      select.replaceChildren(...none, ...GM_PROGRAMS.map((name, p) => option(p, `${p} ${name}`)));
    }
    e.program.value = "0";
    e.news[0].value = "33";
    e.open.addEventListener("click", () => this.show(true));
    e.close.addEventListener("click", () => this.show(false));
    e.start.addEventListener("click", () => this.guard(() => this.start()));
    e.stop.addEventListener("click", () => this.guard(() => this.stop()));
    e.keep.addEventListener("click", () => this.guard(() => this.keep()));
    e.tempo.addEventListener("change", () => this.guard(() => this.controls({ tempo: Number(e.tempo.value) })));
    e.metre.addEventListener("change", () => this.guard(() => this.controls({ metre: this.metre() })));
    e.structure.addEventListener("change", () => this.guard(() => this.controls({ structure: e.structure.value })));
    e.midi.disabled = typeof navigator.requestMIDIAccess !== "function";
    e.midi.title = e.midi.disabled ? "This browser has no Web MIDI" : "Play with a MIDI keyboard connected to this computer";
    e.midi.addEventListener("click", () => this.guard(() => this.connectMidi()));
    document.addEventListener("keydown", (ev) => this.key(ev, true));
    document.addEventListener("keyup", (ev) => this.key(ev, false));
    this.render();
  }

  show(open) {
    this.el.view.hidden = !open;
    document.body.classList.toggle("jam-open", open);
    if (open) this.fill();
    else if (this.playing) this.guard(() => this.stop());
  }

  get isOpen() {
    return !this.el.view.hidden;
  }

  async guard(action) {
    try {
      await action();
    } catch (error) {
      this.host.showError(error);
    }
    this.render();
  }

  /** The song's tracks as choices: who plays, and which tracks accompany. */
  fill() {
    const song = this.host.song();
    if (!song) return;
    const e = this.el;
    e.who.replaceChildren(option("keys", "you (keyboard or MIDI)"),
      ...song.tracks.filter((t) => t.notes.length).map((t) => option(t.index, `track ${t.index + 1}: ${t.name || "untitled"}`)));
    e.tracks.replaceChildren(...song.tracks.map((t) => {
      const label = document.createElement("label");
      label.className = "check";
      const box = document.createElement("input");
      box.type = "checkbox";
      box.value = String(t.index);
      box.disabled = t.editable === false;
      label.append(box, ` ${t.index + 1}: ${t.name || "untitled"}`);
      return label;
    }));
    if (!e.tempo.value) e.tempo.value = String(Math.round(song.qpm || 120));
    const last = song.bars[song.bars.length - 1];
    if (last && !e.metre.value) e.metre.value = `${last.numerator}/${last.denominator}`;
    e.from.max = String(song.bars.length + 1);
  }

  metre() {
    const m = /^\s*(\d+)\s*\/\s*(\d+)\s*$/.exec(this.el.metre.value);
    if (!m) throw new Error("write the metre as 3/4, 4/4, 6/8…");
    return [Number(m[1]), Number(m[2])];
  }

  render() {
    const e = this.el;
    e.start.disabled = this.playing;
    e.stop.disabled = !this.playing;
    e.keep.disabled = this.playing || !this.sent.length || this.id === null;
    e.octave.textContent = `keys A…' play from C${this.octave / 12 - 1} (Z and X: octave down and up)`;
  }

  renderParts(parts) {
    const hint = document.createElement("p");
    hint.className = "fine";
    hint.textContent = "Each part, while playing: notes a bar (empty: as it played), lowest and highest pitch, mute.";
    this.el.parts.replaceChildren(hint, ...parts.map((p) => {
      const row = document.createElement("div");
      row.className = "jam-part";
      row.dataset.track = String(p.track);
      const reg = p.register || ["", ""];
      row.innerHTML = `<span class="name"></span>
        <input type="number" class="density" min="0" max="64" placeholder="auto" title="Notes a bar (empty: as the part played)">
        <input type="number" class="low" min="0" max="127" title="Lowest pitch"> <input type="number" class="high" min="0" max="127" title="Highest pitch">
        <label class="check"><input type="checkbox" class="mute"> mute</label>`;
      const song = this.host.song();
      const own = song && p.track < song.tracks.length ? p.name : p.is_drum ? "Drums" : GM_PROGRAMS[p.program];
      row.querySelector(".name").textContent = `${p.track + 1}: ${own || p.name} `;
      row.querySelector(".low").value = String(reg[0]);
      row.querySelector(".high").value = String(reg[1]);
      row.addEventListener("change", () => this.guard(() => this.controls({ parts: [this.partControls(row)] })));
      return row;
    }));
  }

  partControls(row) {
    const value = (cls) => row.querySelector(cls).value.trim();
    const density = value(".density");
    const low = value(".low");
    const high = value(".high");
    return {
      track: Number(row.dataset.track),
      density: density === "" ? null : Number(density),
      register: low === "" || high === "" ? null : [Number(low), Number(high)],
      mute: row.querySelector(".mute").checked,
    };
  }

  // ---- the take ----

  settings() {
    const e = this.el;
    const accompany = [...e.tracks.querySelectorAll("input:checked")].map((b) => Number(b.value));
    const fresh = e.news.map((s) => s.value).filter((v) => v !== "")
      .map((v) => (v === "drums" ? { program: 0, drums: true } : { program: Number(v) }));
    const body = { accompany, new: fresh, tempo: Number(e.tempo.value), metre: this.metre(), structure: e.structure.value };
    if (e.who.value === "keys") body.player_program = Number(e.program.value);
    else body.player = Number(e.who.value);
    if (e.from.value !== "") body.from = Number(e.from.value) - 1;
    return body;
  }

  async start() {
    const song = this.host.song();
    if (!song) throw new Error("open a song first");
    if (this.playing) await this.stop();
    const body = this.settings();
    this.player.stop();
    const synth = await this.player.ensureSynth();
    const actx = synth.getAudioContext();
    this.fallback = actx.state !== "running";
    this.now = this.fallback ? () => performance.now() / 1000 : () => actx.currentTime;
    this.audioTime = (t) => actx.currentTime + Math.max(0, t - this.now());
    this.synth = synth;
    const answer = await call("POST", `/api/songs/${encodeURIComponent(song.id)}/jam/start`, body);
    this.reset();
    this.id = song.id;
    this.playing = true;
    this.songTrack = body.player === undefined ? null : song.tracks[body.player];
    const parts = answer.parts;
    const channels = Player.channels([answer.player, ...parts]);
    [answer.player, ...parts].forEach((p, i) => {
      this.channels.set(p.track, channels[i]);
      if (!p.is_drum) synth.setProgram(channels[i], p.program | 0);
      synth.setChVol(channels[i], 100);
    });
    this.playerChannel = channels[0];
    this.renderParts(parts);
    const ready = answer.events.find((ev) => ev.name === "ready").data;
    this.first = this.nextToSend = ready.bar;
    const barSeconds = (ready.metre[0] * 4 / ready.metre[1]) * 60 / ready.qpm;
    this.t0 = this.now() + (this.el.click.checked ? barSeconds : 0.5); // a bar of clicks before the first bar
    if (this.el.click.checked) {
      const beat = barSeconds / ready.metre[0];
      for (let k = 0; k < ready.metre[0]; k++) this.click(this.t0 - barSeconds + k * beat, k === 0);
    }
    this.after = answer.after;
    this.handle(answer.events);
    this.timer = setInterval(() => this.tick(), TICK_MS);
    this.poll();
    this.el.status.textContent = "Playing: the parts come in with you.";
  }

  async stop() {
    if (!this.playing) return;
    this.playing = false;
    clearInterval(this.timer);
    clearTimeout(this.polling);
    for (let ch = 0; ch < 16; ch++) if (this.synth) this.synth.allSoundOff(ch);
    await this.sending;
    await call("POST", `/api/songs/${encodeURIComponent(this.id)}/jam/stop`);
    this.el.status.textContent = `Stopped after ${this.sent.length} bar${this.sent.length === 1 ? "" : "s"}. Keep adds the take to the song as a new version.`;
  }

  async keep() {
    const view = await call("POST", `/api/songs/${encodeURIComponent(this.id)}/jam/keep`);
    this.host.kept(view);
    this.sent = [];
    this.el.status.textContent = `Kept as version ${view.version} (Undo takes it back).`;
  }

  async controls(changes) {
    if (!this.playing) return; // the settings go with the next Start
    await call("POST", `/api/songs/${encodeURIComponent(this.id)}/jam/controls`, changes);
  }

  async poll() {
    if (!this.playing) return;
    try {
      const answer = await call("GET", `/api/songs/${encodeURIComponent(this.id)}/jam/events?after=${this.after}`);
      this.handle(answer.events);
    } catch (error) {
      this.host.showError(error);
    }
    if (this.playing) this.polling = setTimeout(() => this.poll(), POLL_MS);
  }

  handle(events) {
    for (const ev of events) {
      if (ev.seq <= this.after) continue;
      this.after = ev.seq;
      const d = ev.data;
      if (ev.name === "grid") this.grid(d);
      else if (ev.name === "notes") this.notes(d);
      else if (ev.name === "timing") this.el.status.textContent = `Bar ${d.played + 1} read in ${d.seconds.toFixed(2)} s; ${d.margin.toFixed(2)} s to spare.`;
    }
  }

  grid(d) {
    const before = this.bars.get(d.bar - 1);
    const t = d.bar === this.first || !before ? this.t0 + (d.start * 60) / d.qpm : before.t + before.seconds;
    const bar = { t, seconds: (d.quarters * 60) / d.qpm, quarters: d.quarters, qpm: d.qpm, metre: d.metre };
    this.bars.set(d.bar, bar);
    if (this.el.click.checked) {
      const beat = bar.seconds / d.metre[0];
      for (let k = 0; k < d.metre[0]; k++) this.click(t + k * beat, k === 0);
    }
    if (this.songTrack) {
      // the song's track plays for the player: its notes of this bar are heard and, at the bar's end, sent
      for (const [start, duration, pitch, velocity] of this.songBar(d.bar, bar)) {
        const on = t + (start * 60) / bar.qpm;
        this.played.push({ pitch, on, off: on + (duration * 60) / bar.qpm, velocity });
        this.enqueue(this.playerChannel, pitch, velocity, on, on + (duration * 60) / bar.qpm);
      }
    }
  }

  /** The song track's notes of song bar `index`, from its start, cut to the live bar's length. */
  songBar(index, bar) {
    const songBar = this.host.song().bars[index];
    if (!songBar) return [];
    return this.songTrack.notes
      .filter((n) => n[0] >= songBar.start - EARLY_Q && n[0] < songBar.end - EARLY_Q)
      .map((n) => [Math.max(0, n[0] - songBar.start), n[1], n[2], n[3]])
      .filter((n) => n[0] < bar.quarters - EARLY_Q);
  }

  notes(d) {
    const bar = this.bars.get(d.bar);
    if (!bar) return;
    const at = this.now();
    if (at > bar.t) this.late++;
    this.scheduled.push({ bar: d.bar, track: d.track, notes: d.notes.length, at, start: bar.t, qpm: bar.qpm });
    const ch = this.channels.get(d.track);
    const spq = 60 / bar.qpm;
    for (const [start, duration, pitch, velocity] of d.notes) {
      const on = bar.t + start * spq;
      this.enqueue(ch, pitch, velocity, on, on + duration * spq);
    }
  }

  click(on, downbeat) {
    this.enqueue(9, downbeat ? 76 : 77, downbeat ? 100 : 70, on, on + 0.05);
  }

  enqueue(ch, pitch, velocity, on, off) {
    this.queue.push({ ch, pitch, velocity: Math.max(1, Math.min(127, velocity | 0)), on, off: Math.max(off, on + 0.02) });
    this.queue.sort((a, b) => a.on - b.on);
  }

  tick() {
    if (!this.playing) return;
    const now = this.now();
    const horizon = now + LOOKAHEAD_S;
    while (this.queue.length && this.queue[0].on < horizon) {
      const e = this.queue.shift();
      if (e.on < now - 0.05) continue; // too late to sound
      this.synth.noteOn(e.ch, e.pitch, e.velocity, this.audioTime(e.on));
      this.synth.noteOff(e.ch, e.pitch, this.audioTime(e.off));
    }
    // every bar that ended is sent whole, in order
    for (let bar = this.bars.get(this.nextToSend); bar && now >= bar.t + bar.seconds; bar = this.bars.get(this.nextToSend)) {
      this.send(this.nextToSend, this.barNotes(bar));
      this.nextToSend++;
    }
  }

  /** The player's notes of `bar`, taken out of the buffer, in quarter notes from its start; a key still held lasts
   * to the bar's end. */
  barNotes(bar) {
    const spq = 60 / bar.qpm;
    const edge = bar.t + bar.seconds - EARLY_Q * spq;
    const end = bar.t + bar.seconds;
    const mine = this.played.filter((n) => n.on < edge);
    this.played = this.played.filter((n) => n.on >= edge);
    for (const [pitch, h] of this.held) {
      if (h.on < edge) {
        mine.push({ pitch, on: h.on, off: end, velocity: h.velocity });
        this.held.delete(pitch);
      }
    }
    return mine.map((n) => {
      const start = Math.min(Math.max(0, (n.on - bar.t) / spq), bar.quarters - EARLY_Q - MIN_Q);
      const duration = Math.max(MIN_Q, Math.min(n.off, end) / spq - n.on / spq);
      return [Number(start.toFixed(4)), Number(duration.toFixed(4)), n.pitch, n.velocity];
    });
  }

  send(index, notes) {
    const id = this.id;
    this.sent.push({ bar: index, notes: notes.length, at: this.now() });
    this.sending = this.sending
      .then(() => call("POST", `/api/songs/${encodeURIComponent(id)}/jam/bar`, { index, notes }))
      .catch((error) => this.host.showError(error));
  }

  // ---- playing ----

  noteOn(pitch, velocity) {
    if (!this.playing || this.songTrack) return;
    const at = this.now();
    if (this.held.has(pitch)) this.noteOff(pitch);
    this.held.set(pitch, { on: at, velocity });
    this.synth.noteOn(this.playerChannel, pitch, velocity, this.audioTime(at));
  }

  noteOff(pitch) {
    const h = this.held.get(pitch);
    if (!h) return;
    this.held.delete(pitch);
    const at = this.now();
    this.played.push({ pitch, on: h.on, off: at, velocity: h.velocity });
    if (this.synth) this.synth.noteOff(this.playerChannel, pitch, this.audioTime(at));
  }

  key(ev, down) {
    if (!this.isOpen || ev.ctrlKey || ev.metaKey || ev.altKey || typing(ev.target)) return;
    const key = ev.key.toLowerCase();
    if (key === " " && this.playing) {
      ev.preventDefault(); // Space would play the song over the jam (app.js): not while jamming
      ev.stopImmediatePropagation();
      return;
    }
    if (down && (key === "z" || key === "x")) {
      this.octave = Math.max(24, Math.min(96, this.octave + (key === "z" ? -12 : 12)));
      this.render();
      return;
    }
    const k = KEYS.indexOf(key);
    if (k < 0) return;
    ev.preventDefault();
    if (down && !ev.repeat) this.noteOn(this.octave + k, 90);
    else if (!down) this.noteOff(this.octave + k);
  }

  async connectMidi() {
    const access = await navigator.requestMIDIAccess();
    const attach = () => {
      for (const input of access.inputs.values()) {
        input.onmidimessage = (m) => {
          const [status, pitch, velocity] = m.data;
          const kind = status & 0xf0;
          if (kind === 0x90 && velocity > 0) this.noteOn(pitch, velocity);
          else if (kind === 0x80 || kind === 0x90) this.noteOff(pitch);
        };
      }
      this.el.status.textContent = `MIDI: ${access.inputs.size} input${access.inputs.size === 1 ? "" : "s"} connected.`;
    };
    access.onstatechange = attach;
    attach();
  }
}

/** Read-only views for browser tests: each part's bar as it was queued ({bar, track, notes, at, start, qpm}: `at`
 * and `start` in the page's clock seconds), and the take's state. */
export function expose(jam) {
  Object.defineProperty(window, "jamScheduled", { get: () => jam.scheduled.map((s) => ({ ...s })) });
  Object.defineProperty(window, "jamState", {
    get: () => ({ playing: jam.playing, first: jam.first, sent: jam.sent.map((s) => ({ ...s })), late: jam.late,
                  now: jam.now ? jam.now() : null }),
  });
}
