// Plays POST /v1/audio/speech in an <audio> element while it is still arriving.
//
// How playback starts early: the server sends each sentence's audio as soon as
// it is synthesized (chunked transfer). For formats Media Source Extensions can
// play (mp3 everywhere, aac in most browsers) the page reads the response body
// with fetch's stream reader and appends every chunk to a SourceBuffer at
// once, so the element plays the first sentence while the rest is synthesized.
// Formats MSE cannot take (opus in Ogg, flac, wav, raw pcm) are played once
// the whole body is in; raw pcm is wrapped in a WAV header for the element.

import { request } from "./api.js";

const MIME = {
  mp3: "audio/mpeg",
  aac: "audio/aac",
  opus: "audio/ogg",
  flac: "audio/flac",
  wav: "audio/wav",
  pcm: "audio/pcm",
};
const PCM_RATE = 24000;  // what the server sends for raw pcm

/** Whether audio in this format starts playing before the whole body is in. */
export function streams(format) {
  return Boolean(window.MediaSource?.isTypeSupported(MIME[format]));
}

export class Player {
  constructor(audio) {
    this.audio = audio;
    this.controller = null;
    this.sourceUrl = null;
  }

  /**
   * Speak `body` (the JSON of /v1/audio/speech). Call it from a click handler:
   * playback is started there, before the first byte arrives. `onFirstAudio`
   * runs when the first bytes arrive. Resolves to the whole audio as a Blob.
   */
  async speak(body, onFirstAudio = () => {}) {
    this.stop();
    const controller = new AbortController();
    this.controller = controller;
    const format = body.response_format || "mp3";
    const mime = MIME[format];
    const source = streams(format) ? new MediaSource() : null;
    if (source) {
      this.setSource(URL.createObjectURL(source));
      this.audio.play().catch(() => {});  // starts when data arrives; stop() interrupts it
    }
    try {
      const response = await request("v1/audio/speech", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify(body),
        signal: controller.signal,
      });
      const buffer = source ? await openBuffer(source, mime) : null;
      const chunks = [];
      const reader = response.body.getReader();
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        if (!chunks.length) onFirstAudio();
        chunks.push(value);
        if (buffer) await append(buffer, value);
      }
      if (!chunks.length) throw new Error("The server sent no audio.");
      if (source) {
        source.endOfStream();
      } else {
        this.setSource(URL.createObjectURL(playable(chunks, format)));
        await this.audio.play().catch(() => {});
      }
      return new Blob(chunks, { type: mime });
    } finally {
      if (this.controller === controller) this.controller = null;
    }
  }

  /** Stop playing and cancel a request in flight (the server stops synthesizing). */
  stop() {
    this.controller?.abort();
    this.controller = null;
    this.audio.pause();
  }

  get busy() {
    return this.controller !== null;
  }

  setSource(url) {
    if (this.sourceUrl) URL.revokeObjectURL(this.sourceUrl);
    this.sourceUrl = url;
    this.audio.src = url;
  }
}

async function openBuffer(source, mime) {
  if (source.readyState !== "open") {
    await new Promise((resolve) => source.addEventListener("sourceopen", resolve, { once: true }));
  }
  return source.addSourceBuffer(mime);
}

function append(buffer, chunk) {
  return new Promise((resolve, reject) => {
    const done = (event) => {
      buffer.removeEventListener("updateend", done);
      buffer.removeEventListener("error", done);
      if (event.type === "error") reject(new Error("The browser could not play this audio."));
      else resolve();
    };
    buffer.addEventListener("updateend", done);
    buffer.addEventListener("error", done);
    buffer.appendBuffer(chunk);
  });
}

/** The whole audio in a form the <audio> element plays: raw pcm gets a WAV header. */
function playable(chunks, format) {
  if (format !== "pcm") return new Blob(chunks, { type: MIME[format] });
  const size = chunks.reduce((total, chunk) => total + chunk.byteLength, 0);
  const header = new DataView(new ArrayBuffer(44));
  const text = (offset, value) =>
    [...value].forEach((char, i) => header.setUint8(offset + i, char.charCodeAt(0)));
  text(0, "RIFF");
  header.setUint32(4, 36 + size, true);
  text(8, "WAVEfmt ");
  header.setUint32(16, 16, true);
  header.setUint16(20, 1, true);  // PCM
  header.setUint16(22, 1, true);  // mono
  header.setUint32(24, PCM_RATE, true);
  header.setUint32(28, PCM_RATE * 2, true);
  header.setUint16(32, 2, true);
  header.setUint16(34, 16, true);
  text(36, "data");
  header.setUint32(40, size, true);
  return new Blob([header.buffer, ...chunks], { type: "audio/wav" });
}
