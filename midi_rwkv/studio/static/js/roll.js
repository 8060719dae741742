// The multi-track piano roll: one lane per track on a <canvas>, a bar ruler on top, a lane header on the left.
// Bars are 0-based here (as in the API); only the labels count from 1. A selection is {track, start, end}
// with end exclusive (with `whole: true`, the whole lane is chosen). Times are beats (quarter notes).
// A "new lane" (setNewLane) is an extra, dashed lane under the tracks for a track that is not in the song yet: the
// ghost of a new-track candidate is drawn there.

import { instrumentName, pitchName, trackColour } from "./gm.js";

const HEADER_W = 188;
const RULER_H = 30;
const MIN_LANE_H = 72;
const RIGHT_MARGIN = 48;
const MIN_PPB = 2;
const MAX_PPB = 240;
export const MAX_BARS = 32;

const C = {
  page: "#ffffff",
  laneA: "#fbfcfd",
  laneB: "#f4f6f9",
  laneSelected: "#eef4fb",
  barLine: "#c3cad4",
  beatLine: "#e4e8ee",
  octaveLine: "#edf0f4",
  ruler: "#eceff3",
  rulerText: "#3b4450",
  header: "#ffffff",
  headerText: "#1d232b",
  muted: "#66707c",
  border: "#cfd5dd",
  cursor: "#e0243a",
  focus: "#1b5fc1",
};

function hexToRgba(hex, alpha) {
  const n = parseInt(hex.slice(1), 16);
  return `rgba(${(n >> 16) & 255}, ${(n >> 8) & 255}, ${n & 255}, ${alpha})`;
}

export class PianoRoll {
  constructor(canvas, scroller, wrap, { onSelect } = {}) {
    this.canvas = canvas;
    this.ctx = canvas.getContext("2d");
    this.scroller = scroller;
    this.spacer = scroller.firstElementChild;
    this.wrap = wrap;
    this.onSelect = onSelect || (() => {});
    this.song = null;
    this.selection = null;
    this.ghost = null; // {track, bars: [a, b], notes}; track === song.tracks.length: the new lane
    this.newLane = null; // {program, is_drum, title, highlight}: an extra lane under the tracks
    this.cursorBeat = null;
    this.ppb = 24; // pixels per beat
    this.scrollX = 0;
    this.hover = null; // {track, bar}
    this.drag = null;
    this.width = 0;
    this.height = 0;
    this.laneH = MIN_LANE_H;
    this.ranges = [];
    this.fitted = false;
    this._frame = 0;

    // resize on the next frame: resizing the canvas inside the observer would notify it again in the same frame
    let pending = 0;
    new ResizeObserver(() => {
      if (!pending) pending = requestAnimationFrame(() => {
        pending = 0;
        this.resize();
      });
    }).observe(wrap);
    scroller.addEventListener("scroll", () => {
      this.scrollX = scroller.scrollLeft;
      this.requestDraw();
    });
    canvas.addEventListener("wheel", (e) => this.onWheel(e), { passive: false });
    canvas.addEventListener("pointerdown", (e) => this.onPointerDown(e));
    canvas.addEventListener("pointermove", (e) => this.onPointerMove(e));
    canvas.addEventListener("pointerup", (e) => this.onPointerUp(e));
    canvas.addEventListener("pointercancel", (e) => this.onPointerUp(e));
    canvas.addEventListener("pointerleave", () => {
      if (!this.drag) {
        this.hover = null;
        this.requestDraw();
      }
    });
    canvas.addEventListener("focus", () => this.requestDraw());
    canvas.addEventListener("blur", () => this.requestDraw());
    this.resize();
  }

  // ---- state in ----

  setSong(song) {
    const first = !this.song || this.song.id !== song.id;
    this.song = song;
    this.computeRanges();
    this.resize();
    if (first) {
      this.fitted = false;
      this.fit();
    }
    this.requestDraw();
  }

  setSelection(selection) {
    this.selection = selection;
    this.requestDraw();
  }

  setGhost(ghost) {
    this.ghost = ghost;
    this.computeRanges();
    this.requestDraw();
  }

  /** Show (or hide, with null) the extra lane for a new track: {program, is_drum, title, highlight}. */
  setNewLane(lane) {
    if (JSON.stringify(lane) === JSON.stringify(this.newLane)) return;
    this.newLane = lane;
    this.computeRanges();
    this.resize();
    this.requestDraw();
  }

  setCursor(beat) {
    this.cursorBeat = beat;
    if (beat !== null) this.keepVisible(beat);
    this.requestDraw();
  }

  // ---- geometry ----

  get totalBeats() {
    if (!this.song) return 0;
    const bars = this.song.bars;
    return Math.max(this.song.beats || 0, bars.length ? bars[bars.length - 1].end : 0);
  }

  get contentWidth() {
    return HEADER_W + this.totalBeats * this.ppb + RIGHT_MARGIN;
  }

  xOf(beat) {
    return HEADER_W + beat * this.ppb - this.scrollX;
  }

  beatAt(x) {
    return (x - HEADER_W + this.scrollX) / this.ppb;
  }

  barAt(beat) {
    const bars = this.song ? this.song.bars : [];
    if (!bars.length) return 0;
    let lo = 0;
    let hi = bars.length - 1;
    if (beat <= bars[0].start) return 0;
    if (beat >= bars[hi].start) return hi;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (bars[mid].start <= beat) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }

  /** Lanes drawn: the tracks, and the new lane when there is one. */
  get laneCount() {
    return this.song ? this.song.tracks.length + (this.newLane ? 1 : 0) : 0;
  }

  /** The track of a lane, or for the new lane a stand-in with no notes. */
  laneTrack(i) {
    const tracks = this.song.tracks;
    if (i < tracks.length) return tracks[i];
    const lane = this.newLane || {};
    return { index: i, name: "", program: lane.program | 0, is_drum: Boolean(lane.is_drum), notes: [], isNew: true };
  }

  laneTop(track) {
    return RULER_H + track * this.laneH;
  }

  trackAt(y) {
    if (!this.song || y < RULER_H) return null;
    const t = Math.floor((y - RULER_H) / this.laneH);
    return t >= 0 && t < this.song.tracks.length ? t : null;
  }

  /** The canvas point (CSS pixels from its top-left) in the middle of a track's lane at a bar (0-based). */
  pointAt(track, bar) {
    const b = this.song.bars[bar];
    return { x: this.xOf((b.start + b.end) / 2), y: this.laneTop(track) + this.laneH / 2 };
  }

  computeRanges() {
    if (!this.song) return;
    const lanes = Array.from({ length: this.laneCount }, (_, i) => this.laneTrack(i));
    this.ranges = lanes.map((t) => {
      let lo = 128;
      let hi = -1;
      const take = (n) => {
        lo = Math.min(lo, n[2]);
        hi = Math.max(hi, n[2]);
      };
      t.notes.forEach(take);
      if (this.ghost && this.ghost.track === t.index) this.ghost.notes.forEach(take);
      if (hi < 0) {
        lo = 55;
        hi = 72;
      }
      const min = lo;
      const max = hi;
      lo -= 2;
      hi += 2;
      const span = hi - lo + 1;
      if (span < 18) {
        const extra = 18 - span;
        lo -= Math.floor(extra / 2);
        hi += Math.ceil(extra / 2);
      }
      return { lo: Math.max(0, lo), hi: Math.min(127, hi), min, max };
    });
  }

  resize() {
    const dpr = window.devicePixelRatio || 1;
    const width = Math.max(200, this.wrap.clientWidth);
    const n = this.laneCount;
    const available = this.wrap.clientHeight;
    this.laneH = n ? Math.max(MIN_LANE_H, Math.floor((available - RULER_H) / n)) : MIN_LANE_H;
    const height = Math.max(available, RULER_H + n * this.laneH);
    if (width !== this.width || height !== this.height || this.canvas.width !== Math.round(width * dpr)) {
      this.width = width;
      this.height = height;
      this.canvas.style.width = `${width}px`;
      this.canvas.style.height = `${height}px`;
      this.canvas.width = Math.round(width * dpr);
      this.canvas.height = Math.round(height * dpr);
    }
    this.spacer.style.width = `${this.contentWidth}px`;
    if (this.song && !this.fitted) this.fit();
    this.draw();
  }

  // ---- zoom and scroll ----

  setZoom(ppb, anchorX = HEADER_W) {
    ppb = Math.min(MAX_PPB, Math.max(MIN_PPB, ppb));
    const beat = this.beatAt(anchorX);
    this.ppb = ppb;
    this.spacer.style.width = `${this.contentWidth}px`;
    this.scrollTo(beat * ppb - (anchorX - HEADER_W));
  }

  zoomBy(factor, anchorX) {
    this.setZoom(this.ppb * factor, anchorX === undefined ? HEADER_W + (this.width - HEADER_W) / 2 : anchorX);
  }

  fit() {
    const beats = this.totalBeats;
    if (!beats || this.width <= HEADER_W + 50) return;
    this.fitted = true;
    // whole piece when it reads well; otherwise a comfortable zoom from the start
    const whole = (this.width - HEADER_W - RIGHT_MARGIN) / beats;
    this.ppb = Math.min(MAX_PPB, Math.max(whole, 10));
    this.spacer.style.width = `${this.contentWidth}px`;
    this.scrollTo(0);
  }

  scrollTo(x) {
    const max = Math.max(0, this.contentWidth - this.width);
    this.scrollX = Math.min(max, Math.max(0, x));
    this.scroller.scrollLeft = this.scrollX;
    this.requestDraw();
  }

  keepVisible(beat) {
    const x = this.xOf(beat);
    const w = this.width - HEADER_W;
    if (x < HEADER_W || x > HEADER_W + w * 0.88) this.scrollTo(beat * this.ppb - w * 0.2);
  }

  showBars(start, end) {
    if (!this.song || !this.song.bars.length) return;
    const a = this.song.bars[start].start;
    const b = this.song.bars[end - 1].end;
    if (this.xOf(a) < HEADER_W || this.xOf(b) > this.width) {
      const w = this.width - HEADER_W;
      this.scrollTo(a * this.ppb - Math.max(0, (w - (b - a) * this.ppb) / 2));
    }
  }

  /** The first bar in view: the one at the left edge, or the next one when most of it is scrolled out. */
  firstBarInView() {
    const bars = this.song ? this.song.bars : [];
    if (!bars.length) return 0;
    const left = this.beatAt(HEADER_W);
    let i = this.barAt(left);
    const bar = bars[i];
    if (left - bar.start > (bar.end - bar.start) / 2 && i + 1 < bars.length) i++;
    return i;
  }

  onWheel(e) {
    if (!this.song) return;
    if (e.ctrlKey || e.metaKey) {
      e.preventDefault();
      const rect = this.canvas.getBoundingClientRect();
      this.zoomBy(Math.exp(-e.deltaY * 0.0025), Math.max(HEADER_W, e.clientX - rect.left));
      return;
    }
    const horizontal = Math.abs(e.deltaX) > Math.abs(e.deltaY) ? e.deltaX : e.shiftKey ? e.deltaY : 0;
    const verticalRoom = this.wrap.scrollHeight > this.wrap.clientHeight;
    const delta = horizontal || (verticalRoom ? 0 : e.deltaY);
    if (delta) {
      e.preventDefault();
      this.scrollTo(this.scrollX + delta);
    }
  }

  // ---- selecting by dragging ----

  local(e) {
    const rect = this.canvas.getBoundingClientRect();
    return { x: e.clientX - rect.left, y: e.clientY - rect.top };
  }

  spanFrom(anchor, bar) {
    let start = Math.min(anchor, bar);
    let end = Math.max(anchor, bar) + 1;
    if (end - start > MAX_BARS) {
      if (bar >= anchor) end = start + MAX_BARS;
      else start = end - MAX_BARS;
    }
    return { start, end };
  }

  onPointerDown(e) {
    if (!this.song || !this.song.bars.length || e.button !== 0) return;
    const { x, y } = this.local(e);
    const lane = this.trackAt(y);
    if (x < HEADER_W) {
      if (lane !== null) {
        const sel = this.selection || { start: 0, end: Math.min(2, this.song.bars.length) };
        this.onSelect({ track: lane, start: sel.start, end: sel.end }, true);
      }
      return;
    }
    const track = lane !== null ? lane : this.selection ? this.selection.track : 0;
    const anchor = this.barAt(this.beatAt(x));
    this.drag = { track, anchor, pointer: e.pointerId };
    this.canvas.setPointerCapture(e.pointerId);
    this.onSelect({ track, ...this.spanFrom(anchor, anchor) }, false);
    e.preventDefault();
    this.canvas.focus({ preventScroll: true });
  }

  onPointerMove(e) {
    if (!this.song) return;
    const { x, y } = this.local(e);
    if (this.drag) {
      // past the edges, scroll along
      if (x > this.width - 16) this.scrollTo(this.scrollX + 12);
      else if (x < HEADER_W + 16 && this.scrollX > 0) this.scrollTo(this.scrollX - 12);
      const bar = this.barAt(this.beatAt(Math.max(HEADER_W, x)));
      this.onSelect({ track: this.drag.track, ...this.spanFrom(this.drag.anchor, bar) }, false);
      return;
    }
    const track = this.trackAt(y);
    const hover = x >= HEADER_W && track !== null ? { track, bar: this.barAt(this.beatAt(x)) } : null;
    this.canvas.style.cursor = x < HEADER_W ? (track !== null ? "pointer" : "default") : "crosshair";
    if (JSON.stringify(hover) !== JSON.stringify(this.hover)) {
      this.hover = hover;
      this.requestDraw();
    }
  }

  onPointerUp(e) {
    if (!this.drag) return;
    const { x } = this.local(e);
    const bar = this.barAt(this.beatAt(Math.max(HEADER_W, x)));
    const sel = { track: this.drag.track, ...this.spanFrom(this.drag.anchor, bar) };
    this.drag = null;
    try {
      this.canvas.releasePointerCapture(e.pointerId);
    } catch {
      // already released
    }
    this.onSelect(sel, true);
  }

  // ---- drawing ----

  requestDraw() {
    if (this._frame) return;
    this._frame = requestAnimationFrame(() => {
      this._frame = 0;
      this.draw();
    });
  }

  draw() {
    const ctx = this.ctx;
    const dpr = window.devicePixelRatio || 1;
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.fillStyle = C.page;
    ctx.fillRect(0, 0, this.width, this.height);
    if (!this.song) return;
    const song = this.song;
    const W = this.width;
    const b0 = this.beatAt(HEADER_W);
    const b1 = this.beatAt(W);
    const sel = this.selection;

    // lanes, grid, selection and notes, clipped to the right of the header
    ctx.save();
    ctx.beginPath();
    ctx.rect(HEADER_W, 0, W - HEADER_W, this.height);
    ctx.clip();
    song.tracks.forEach((t, i) => {
      const top = this.laneTop(i);
      ctx.fillStyle = sel && sel.track === i ? C.laneSelected : i % 2 ? C.laneB : C.laneA;
      ctx.fillRect(HEADER_W, top, W - HEADER_W, this.laneH);
      this.drawOctaves(i, top);
    });
    this.drawGrid(b0, b1);
    if (this.hover && !this.drag) {
      const bar = song.bars[this.hover.bar];
      if (bar) {
        ctx.fillStyle = "rgba(27, 95, 193, 0.06)";
        ctx.fillRect(this.xOf(bar.start), this.laneTop(this.hover.track), (bar.end - bar.start) * this.ppb, this.laneH);
      }
    }
    if (sel && song.bars.length) this.drawSelection(sel);
    if (this.newLane) this.drawNewLane(song.tracks.length);
    song.tracks.forEach((t, i) => this.drawNotes(t, i, b0, b1));
    if (this.ghost) this.drawGhost(b0, b1);
    ctx.restore();

    this.drawRuler(b0, b1);
    this.drawHeaders();
    if (this.cursorBeat !== null) this.drawCursor(this.cursorBeat);
    if (document.activeElement === this.canvas) {
      ctx.strokeStyle = C.focus;
      ctx.lineWidth = 2;
      ctx.strokeRect(1, 1, W - 2, this.height - 2);
    }
  }

  drawOctaves(track, top) {
    const { lo, hi } = this.ranges[track];
    const row = (this.laneH - 8) / (hi - lo + 1);
    if (row < 1.5 || this.laneTrack(track).is_drum) return;
    const ctx = this.ctx;
    ctx.strokeStyle = C.octaveLine;
    ctx.lineWidth = 1;
    ctx.beginPath();
    for (let p = lo; p <= hi; p++) {
      if (p % 12 !== 0) continue;
      const y = Math.round(top + 4 + (hi - p + 1) * row) + 0.5;
      ctx.moveTo(HEADER_W, y);
      ctx.lineTo(this.width, y);
    }
    ctx.stroke();
  }

  drawGrid(b0, b1) {
    const ctx = this.ctx;
    const top = RULER_H;
    const bottom = RULER_H + this.laneCount * this.laneH;
    ctx.lineWidth = 1;
    for (const bar of this.song.bars) {
      if (bar.end < b0 || bar.start > b1) continue;
      const step = 4 / bar.denominator;
      if (step * this.ppb >= 6) {
        ctx.strokeStyle = C.beatLine;
        ctx.beginPath();
        for (let b = bar.start + step; b < bar.end - 1e-6; b += step) {
          const x = Math.round(this.xOf(b)) + 0.5;
          ctx.moveTo(x, top);
          ctx.lineTo(x, bottom);
        }
        ctx.stroke();
      }
      ctx.strokeStyle = C.barLine;
      ctx.beginPath();
      const x = Math.round(this.xOf(bar.start)) + 0.5;
      ctx.moveTo(x, top);
      ctx.lineTo(x, bottom);
      ctx.stroke();
    }
    const bars = this.song.bars;
    if (bars.length) {
      const x = Math.round(this.xOf(bars[bars.length - 1].end)) + 0.5;
      ctx.strokeStyle = C.barLine;
      ctx.beginPath();
      ctx.moveTo(x, top);
      ctx.lineTo(x, bottom);
      ctx.stroke();
    }
    ctx.strokeStyle = C.border;
    ctx.beginPath();
    for (let i = 1; i <= this.laneCount; i++) {
      const y = RULER_H + i * this.laneH - 0.5;
      ctx.moveTo(HEADER_W, y);
      ctx.lineTo(this.width, y);
    }
    ctx.stroke();
  }

  selectionRect(sel) {
    const bars = this.song.bars;
    const a = bars[Math.min(sel.start, bars.length - 1)].start;
    const b = bars[Math.min(sel.end, bars.length) - 1].end;
    return { a, b, x: this.xOf(a), w: (b - a) * this.ppb, y: this.laneTop(sel.track), h: this.laneH };
  }

  drawSelection(sel) {
    if (sel.track >= this.song.tracks.length) return;
    const ctx = this.ctx;
    const colour = trackColour(sel.track);
    const r = this.selectionRect(sel);
    if (!sel.whole) {
      ctx.fillStyle = "rgba(27, 95, 193, 0.045)";
      ctx.fillRect(r.x, RULER_H, r.w, this.song.tracks.length * this.laneH);
    }
    ctx.fillStyle = hexToRgba(colour, 0.13);
    ctx.fillRect(r.x, r.y, r.w, r.h);
    ctx.strokeStyle = colour;
    ctx.lineWidth = 2;
    ctx.strokeRect(r.x + 1, r.y + 1, r.w - 2, r.h - 2);
  }

  noteGeometry(track, top, note) {
    const { lo, hi } = this.ranges[track];
    const row = (this.laneH - 8) / (hi - lo + 1);
    const h = Math.max(2, Math.min(row - (row > 4 ? 1 : 0), 12));
    const y = top + 4 + (hi - note[2]) * row + (row - h) / 2;
    const x = this.xOf(note[0]);
    const w = Math.max(2, note[1] * this.ppb - 1);
    return { x, y, w, h };
  }

  drawNotes(track, i, b0, b1) {
    const ctx = this.ctx;
    const colour = trackColour(i);
    const top = this.laneTop(i);
    const g = this.ghost && this.ghost.track === i ? this.ghostSpan() : null;
    for (const n of track.notes) {
      if (n[0] > b1 || n[0] + n[1] < b0) continue;
      const r = this.noteGeometry(i, top, n);
      const replaced = g && n[0] >= g.a - 1e-9 && n[0] < g.b - 1e-9;
      if (replaced) {
        ctx.fillStyle = "rgba(120, 128, 140, 0.18)";
        ctx.fillRect(r.x, r.y, r.w, r.h);
        continue;
      }
      ctx.fillStyle = hexToRgba(colour, 0.5 + 0.5 * Math.min(1, n[3] / 110));
      ctx.fillRect(r.x, r.y, r.w, r.h);
      if (r.w > 4 && r.h > 4) {
        ctx.strokeStyle = "rgba(0, 0, 0, 0.28)";
        ctx.lineWidth = 1;
        ctx.strokeRect(r.x + 0.5, r.y + 0.5, r.w - 1, r.h - 1);
      }
    }
  }

  ghostSpan() {
    const bars = this.song.bars;
    const [a, b] = this.ghost.bars;
    if (!bars.length) return { a: 0, b: 0 };
    return { a: bars[Math.min(a, bars.length - 1)].start, b: bars[Math.min(b, bars.length) - 1].end };
  }

  /** The new lane: tinted, with a dashed outline, and a line of text while it has no notes to show. */
  drawNewLane(i) {
    const ctx = this.ctx;
    const top = this.laneTop(i);
    const colour = trackColour(i);
    const W = this.width;
    ctx.save();
    ctx.fillStyle = hexToRgba(colour, this.newLane.highlight ? 0.09 : 0.05);
    ctx.fillRect(HEADER_W, top, W - HEADER_W, this.laneH);
    ctx.strokeStyle = colour;
    ctx.lineWidth = this.newLane.highlight ? 2 : 1.25;
    ctx.setLineDash([6, 4]);
    const bars = this.song.bars;
    const x0 = Math.max(HEADER_W + 1, this.xOf(0) + 1);
    const x1 = Math.min(W - 1, this.xOf(bars.length ? bars[bars.length - 1].end : this.totalBeats) - 1);
    ctx.strokeRect(x0, top + 2, Math.max(0, x1 - x0), this.laneH - 4);
    ctx.restore();
    const showing = this.ghost && this.ghost.track === i;
    if (!showing) {
      ctx.save();
      ctx.fillStyle = C.muted;
      ctx.font = "italic 13px system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif";
      ctx.textBaseline = "middle";
      const text = "The new track will be written here: Generate, then play or accept a candidate.";
      this.fitText(text, Math.max(HEADER_W, this.xOf(0)) + 14, top + this.laneH / 2, W - HEADER_W - 28);
      ctx.restore();
    }
  }

  drawGhost(b0, b1) {
    const ghost = this.ghost;
    if (ghost.track >= this.laneCount) return;
    const ctx = this.ctx;
    const colour = trackColour(ghost.track);
    const top = this.laneTop(ghost.track);
    ctx.save();
    ctx.lineWidth = 1.5;
    for (const n of ghost.notes) {
      if (n[0] > b1 || n[0] + n[1] < b0) continue;
      const r = this.noteGeometry(ghost.track, top, n);
      ctx.fillStyle = "#ffffff";
      ctx.fillRect(r.x, r.y, r.w, r.h);
      ctx.fillStyle = hexToRgba(colour, 0.45);
      ctx.fillRect(r.x, r.y, r.w, r.h);
      ctx.strokeStyle = colour;
      ctx.strokeRect(r.x + 0.75, r.y + 0.75, Math.max(1, r.w - 1.5), Math.max(1, r.h - 1.5));
    }
    ctx.restore();
  }

  drawRuler(b0, b1) {
    const ctx = this.ctx;
    const W = this.width;
    ctx.fillStyle = C.ruler;
    ctx.fillRect(HEADER_W, 0, W - HEADER_W, RULER_H);
    ctx.save();
    ctx.beginPath();
    ctx.rect(HEADER_W, 0, W - HEADER_W, RULER_H);
    ctx.clip();
    const sel = this.selection;
    if (sel && this.song.bars.length) {
      const r = this.selectionRect(sel);
      ctx.fillStyle = hexToRgba(trackColour(sel.track), 0.22);
      ctx.fillRect(r.x, 0, r.w, RULER_H);
    }
    // label every k-th bar so that labels stay apart
    const bars = this.song.bars;
    const meanBar = bars.length ? (bars[bars.length - 1].end - bars[0].start) / bars.length : 4;
    const px = meanBar * this.ppb;
    const every = [1, 2, 4, 8, 16, 32, 64].find((k) => k * px >= 30) || 128;
    ctx.font = "600 12px system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif";
    ctx.textBaseline = "middle";
    let previousMetre = "";
    bars.forEach((bar, i) => {
      const metre = `${bar.numerator}/${bar.denominator}`;
      const changed = metre !== previousMetre;
      previousMetre = metre;
      if (bar.end < b0 || bar.start > b1) return;
      const x = Math.round(this.xOf(bar.start)) + 0.5;
      ctx.strokeStyle = "#aab3bf";
      ctx.lineWidth = 1;
      ctx.beginPath();
      ctx.moveTo(x, (i % every === 0) ? 6 : RULER_H - 8);
      ctx.lineTo(x, RULER_H);
      ctx.stroke();
      const inSel = sel && i >= sel.start && i < sel.end;
      if (i % every === 0 || (inSel && px >= 18)) {
        ctx.fillStyle = inSel ? "#0d2a55" : C.rulerText;
        ctx.fillText(String(i + 1), x + 4, RULER_H / 2 - 1);
      }
      if (changed && px >= 40) {
        ctx.fillStyle = C.muted;
        ctx.font = "11px system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif";
        const w = ctx.measureText(String(i + 1)).width;
        ctx.fillText(metre, x + 10 + w + 2, RULER_H / 2 - 1);
        ctx.font = "600 12px system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif";
      }
    });
    ctx.restore();
    ctx.strokeStyle = C.border;
    ctx.beginPath();
    ctx.moveTo(0, RULER_H - 0.5);
    ctx.lineTo(W, RULER_H - 0.5);
    ctx.stroke();
  }

  drawHeaders() {
    const ctx = this.ctx;
    ctx.fillStyle = C.header;
    ctx.fillRect(0, 0, HEADER_W, this.height);
    ctx.fillStyle = C.ruler;
    ctx.fillRect(0, 0, HEADER_W, RULER_H);
    ctx.fillStyle = C.muted;
    ctx.font = "600 11px system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif";
    ctx.textBaseline = "middle";
    ctx.fillText("TRACK", 12, RULER_H / 2);
    ctx.textAlign = "right";
    ctx.fillText("BAR", HEADER_W - 10, RULER_H / 2);
    ctx.textAlign = "left";
    const sel = this.selection;
    this.song.tracks.forEach((t, i) => {
      const top = this.laneTop(i);
      const selected = sel && sel.track === i;
      const colour = trackColour(i);
      if (selected) {
        ctx.fillStyle = hexToRgba(colour, 0.12);
        ctx.fillRect(0, top, HEADER_W, this.laneH);
      }
      ctx.fillStyle = colour;
      ctx.fillRect(0, top, selected ? 7 : 5, this.laneH);
      const cy = top + Math.min(this.laneH / 2, 34);
      ctx.fillStyle = C.headerText;
      ctx.font = `${selected ? 700 : 600} 13px system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif`;
      ctx.textBaseline = "middle";
      const name = t.name && t.name.trim() ? t.name.trim() : `Track ${i + 1}`;
      this.fitText(`${i}  ${name}`, 14, cy - 10, HEADER_W - 24);
      ctx.font = "12px system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif";
      ctx.fillStyle = C.muted;
      this.fitText(instrumentName(t), 14, cy + 8, HEADER_W - 24);
      const r = this.ranges[i];
      if (t.is_drum) {
        ctx.font = "700 10px system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif";
        const label = "DRUMS · ch 10";
        const w = ctx.measureText(label).width + 10;
        ctx.fillStyle = "#fff3d6";
        ctx.fillRect(14, cy + 19, w, 15);
        ctx.strokeStyle = "#d9a520";
        ctx.strokeRect(14.5, cy + 19.5, w - 1, 14);
        ctx.fillStyle = "#7a5200";
        ctx.fillText(label, 19, cy + 27);
      } else if (this.laneH >= 64 && t.notes.length) {
        ctx.font = "11px system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif";
        ctx.fillStyle = "#8a939e";
        ctx.fillText(`${pitchName(r.min)}–${pitchName(r.max)} · ${t.notes.length} notes`, 14, cy + 26);
      }
      ctx.strokeStyle = C.border;
      ctx.beginPath();
      ctx.moveTo(0, top + this.laneH - 0.5);
      ctx.lineTo(HEADER_W, top + this.laneH - 0.5);
      ctx.stroke();
    });
    if (this.newLane) this.drawNewHeader(this.song.tracks.length);
    ctx.strokeStyle = C.border;
    ctx.beginPath();
    ctx.moveTo(HEADER_W - 0.5, 0);
    ctx.lineTo(HEADER_W - 0.5, this.height);
    ctx.stroke();
  }

  drawNewHeader(i) {
    const ctx = this.ctx;
    const lane = this.newLane;
    const t = this.laneTrack(i);
    const top = this.laneTop(i);
    const colour = trackColour(i);
    ctx.fillStyle = hexToRgba(colour, lane.highlight ? 0.12 : 0.06);
    ctx.fillRect(0, top, HEADER_W, this.laneH);
    // a dashed colour bar: not in the song yet
    for (let y = top; y < top + this.laneH; y += 10) {
      ctx.fillStyle = colour;
      ctx.fillRect(0, y, 7, Math.min(6, top + this.laneH - y));
    }
    const cy = top + Math.min(this.laneH / 2, 34);
    ctx.textBaseline = "middle";
    ctx.fillStyle = C.headerText;
    ctx.font = "700 13px system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif";
    this.fitText(lane.title || "New track", 14, cy - 10, HEADER_W - 24);
    ctx.font = "12px system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif";
    ctx.fillStyle = C.muted;
    this.fitText(instrumentName(t), 14, cy + 8, HEADER_W - 24);
    ctx.font = "700 10px system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif";
    const label = t.is_drum ? "NEW · DRUMS · ch 10" : "NEW · not in the song yet";
    const w = ctx.measureText(label).width + 10;
    ctx.fillStyle = "#ffffff";
    ctx.fillRect(14, cy + 19, w, 15);
    ctx.strokeStyle = colour;
    ctx.lineWidth = 1;
    ctx.setLineDash([3, 2]);
    ctx.strokeRect(14.5, cy + 19.5, w - 1, 14);
    ctx.setLineDash([]);
    ctx.fillStyle = colour;
    ctx.fillText(label, 19, cy + 27);
    ctx.strokeStyle = C.border;
    ctx.beginPath();
    ctx.moveTo(0, top + this.laneH - 0.5);
    ctx.lineTo(HEADER_W, top + this.laneH - 0.5);
    ctx.stroke();
  }

  fitText(text, x, y, maxWidth) {
    const ctx = this.ctx;
    if (ctx.measureText(text).width <= maxWidth) {
      ctx.fillText(text, x, y);
      return;
    }
    let s = text;
    while (s.length > 1 && ctx.measureText(`${s}…`).width > maxWidth) s = s.slice(0, -1);
    ctx.fillText(`${s}…`, x, y);
  }

  drawCursor(beat) {
    const x = Math.round(this.xOf(beat)) + 0.5;
    if (x < HEADER_W || x > this.width) return;
    const ctx = this.ctx;
    const bottom = RULER_H + this.laneCount * this.laneH;
    ctx.strokeStyle = C.cursor;
    ctx.lineWidth = 2;
    ctx.beginPath();
    ctx.moveTo(x, 0);
    ctx.lineTo(x, bottom);
    ctx.stroke();
    ctx.fillStyle = C.cursor;
    ctx.beginPath();
    ctx.moveTo(x - 6, 0);
    ctx.lineTo(x + 6, 0);
    ctx.lineTo(x, 8);
    ctx.closePath();
    ctx.fill();
  }
}
