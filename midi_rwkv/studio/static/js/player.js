// Playback through the vendored General MIDI synth (webaudio-tinysynth, loaded as a classic script that sets
// window.WebAudioTinySynth). Notes are scheduled a little ahead of the audio clock (a look-ahead loop), with
// times taken from the audio context's currentTime, so the synth's voice limit never drops notes.

const LOOKAHEAD_S = 0.4; // schedule notes starting within this much of "now"
const TICK_MS = 40;
const START_DELAY_S = 0.12;
const MELODIC_CHANNELS = [0, 1, 2, 3, 4, 5, 6, 7, 8, 10, 11, 12, 13, 14, 15];

export class Player {
  constructor() {
    this.synth = null;
    this.scheduledNotes = 0;
    this.playing = false;
    this.timer = 0;
    this.frame = 0;
    this.onCursor = () => {};
    this.onEnd = () => {};
    this.fallback = false;
  }

  async ensureSynth() {
    if (!this.synth) {
      if (typeof window.WebAudioTinySynth !== "function") {
        throw new Error("the synthesizer did not load (static/vendor/webaudio-tinysynth), so nothing can play");
      }
      this.synth = new window.WebAudioTinySynth({ voices: 96, useReverb: 1 });
      this.synth.setMasterVol(0.6);
    }
    const actx = this.synth.getAudioContext();
    if (actx.state !== "running") {
      await Promise.race([actx.resume().catch(() => {}), new Promise((r) => setTimeout(r, 400))]);
    }
    return this.synth;
  }

  /** Channels for tracks: drums on channel 9 (MIDI channel 10), the others on the 15 melodic channels. */
  static channels(tracks) {
    let next = 0;
    return tracks.map((t) => (t.is_drum ? 9 : MELODIC_CHANNELS[next++ % MELODIC_CHANNELS.length]));
  }

  /**
   * Play `tracks` ([{program, is_drum, notes: [[start, duration, pitch, velocity], ...]}]) from beat `from` to
   * beat `to` at `qpm` quarter notes a minute. Returns when playback has started.
   */
  async play({ tracks, from, to, qpm, onCursor, onEnd }) {
    this.stop();
    const synth = await this.ensureSynth();
    const actx = synth.getAudioContext();
    this.onCursor = onCursor || (() => {});
    this.onEnd = onEnd || (() => {});
    this.scheduledNotes = 0;

    const channels = Player.channels(tracks);
    const events = [];
    tracks.forEach((t, i) => {
      const ch = channels[i];
      if (!t.is_drum) synth.setProgram(ch, t.program | 0);
      synth.setChVol(ch, 100);
      for (const [start, duration, pitch, velocity] of t.notes) {
        if (start < from - 1e-9 || start >= to - 1e-9) continue;
        events.push({ ch, pitch, velocity: Math.max(1, Math.min(127, velocity | 0)), on: start, off: Math.min(start + duration, to) });
      }
    });
    events.sort((a, b) => a.on - b.on || a.ch - b.ch || a.pitch - b.pitch);

    // the clock: the audio context's, or the page's when the browser keeps audio suspended (no device, no gesture)
    this.fallback = actx.state !== "running";
    const wall = () => performance.now() / 1000;
    const now = this.fallback ? wall : () => actx.currentTime;
    const secondsPerBeat = 60 / qpm;
    const t0 = now() + START_DELAY_S;
    const at = (beat) => t0 + (beat - from) * secondsPerBeat;
    const audioTime = (t) => actx.currentTime + Math.max(0, t - now()); // relative to currentTime
    let index = 0;
    this.playing = true;

    const tick = () => {
      const horizon = now() + LOOKAHEAD_S;
      while (index < events.length && at(events[index].on) < horizon) {
        const e = events[index++];
        const on = audioTime(at(e.on));
        const off = Math.max(on + 0.02, audioTime(at(e.off)));
        synth.noteOn(e.ch, e.pitch, e.velocity, on);
        synth.noteOff(e.ch, e.pitch, off); // right after its own noteOn: never releases a later note of that pitch
        this.scheduledNotes++;
      }
    };
    tick();
    this.timer = setInterval(tick, TICK_MS);

    const end = to + 0.05;
    const frame = () => {
      if (!this.playing) return;
      const beat = from + (now() - t0) / secondsPerBeat;
      if (beat >= end) {
        this.finish();
        return;
      }
      this.onCursor(Math.max(from, beat));
      this.frame = requestAnimationFrame(frame);
    };
    this.frame = requestAnimationFrame(frame);
  }

  finish() {
    const onEnd = this.onEnd;
    this.halt();
    onEnd();
  }

  halt() {
    this.playing = false;
    clearInterval(this.timer);
    cancelAnimationFrame(this.frame);
    this.timer = 0;
    this.frame = 0;
  }

  stop() {
    const wasPlaying = this.playing;
    this.halt();
    if (this.synth) for (let ch = 0; ch < 16; ch++) this.synth.allSoundOff(ch);
    if (wasPlaying) this.onEnd();
  }
}
