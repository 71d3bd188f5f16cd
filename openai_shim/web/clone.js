// The clone form: a recording from the microphone (MediaRecorder) or a file,
// a name, a transcript where an engine needs one, languages and engines; sent
// as multipart to POST /v1/audio/voices, whose error message is shown as is.

import { el } from "./dom.js";
import { request } from "./api.js";

const NAME = /^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/;

/** The browser's language as en_US, as a first guess for a new voice. */
function browserLanguage() {
  const [lang, region] = (navigator.language || "en").split("-");
  return region ? `${lang.toLowerCase()}_${region.toUpperCase()}` : lang.toLowerCase();
}

export class CloneForm {
  /** `onCloned(voice)` runs with the server's description of a new voice. */
  constructor(root, onCloned) {
    this.root = root;
    this.onCloned = onCloned;
    this.form = root.querySelector("#clone-form");
    this.error = root.querySelector("#clone-error");
    this.preview = root.querySelector("#clone-preview");
    this.file = root.querySelector("#clone-file");
    this.recordButton = root.querySelector("#record-button");
    this.recordTime = root.querySelector("#record-time");
    this.transcript = root.querySelector("#clone-transcript");
    this.languages = root.querySelector("#clone-languages");
    this.engineBoxes = root.querySelector("#clone-engine-boxes");
    this.audio = null;  // { blob, filename } to upload
    this.previewUrl = null;
    this.recorder = null;
    this.engines = [];
    this.limits = { min_seconds: 3, max_seconds: 30 };
    this.languages.value = browserLanguage();
    this.file.addEventListener("change", () => this.chooseFile());
    this.recordButton.addEventListener("click", () => this.toggleRecording());
    this.engineBoxes.addEventListener("change", () => this.updateTranscriptNeed());
    this.form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.submit();
    });
    if (!navigator.mediaDevices?.getUserMedia || !window.MediaRecorder) {
      this.recordButton.disabled = true;
      this.recordTime.textContent = window.isSecureContext
        ? "This browser cannot record; choose a file instead."
        : "Recording needs https (or localhost); choose a file instead.";
    }
  }

  /** Show what the server can do: the engines that clone, their needs, the limits. */
  configure(library) {
    this.engines = library?.engines || [];
    this.limits = library?.limits || this.limits;
    const { min_seconds: min, max_seconds: max } = this.limits;
    this.root.querySelector("#clone-audio-hint").textContent =
      `One person speaking clearly, ${min} to ${max} seconds.`;
    const note = this.root.querySelector("#clone-engines");
    if (!this.engines.length) {
      note.textContent = "No running engine can clone voices (XTTS-v2 can): a voice saved now is only used once one runs.";
    } else {
      note.textContent = `Cloned voices are spoken by: ${this.engines.map((e) => e.engine).join(", ")}.`;
    }
    const checked = new Set(this.chosenEngines());
    this.engineBoxes.replaceChildren(
      ...this.engines.map((engine) =>
        el(
          "label",
          { class: "check" },
          el("input", { type: "checkbox", name: "engines", value: engine.engine, checked: checked.has(engine.engine) }),
          ` ${engine.engine}${engine.needs_transcript ? " (needs a transcript)" : ""}`,
        ),
      ),
    );
    this.root.querySelector("#clone-engine-set").hidden = this.engines.length < 2;
    this.updateTranscriptNeed();
  }

  chosenEngines() {
    return [...this.engineBoxes.querySelectorAll("input:checked")].map((box) => box.value);
  }

  /** Engines that will use the voice and need its transcript. */
  transcriptNeededBy() {
    const chosen = this.chosenEngines();
    return this.engines
      .filter((engine) => engine.needs_transcript && (!chosen.length || chosen.includes(engine.engine)))
      .map((engine) => engine.engine);
  }

  updateTranscriptNeed() {
    const needers = this.transcriptNeededBy();
    this.transcript.required = needers.length > 0;
    this.root.querySelector("#transcript-need").textContent = needers.length
      ? `(required: ${needers.join(", ")} need it)`
      : "(optional)";
  }

  chooseFile() {
    const file = this.file.files[0];
    if (file) this.useAudio(file, file.name);
  }

  useAudio(blob, filename) {
    this.audio = { blob, filename };
    if (this.previewUrl) URL.revokeObjectURL(this.previewUrl);
    this.previewUrl = URL.createObjectURL(blob);
    this.preview.src = this.previewUrl;
    this.preview.hidden = false;
  }

  async toggleRecording() {
    if (this.recorder) {
      this.recorder.stop();
      return;
    }
    let stream;
    try {
      stream = await navigator.mediaDevices.getUserMedia({ audio: true });
    } catch (err) {
      this.showError(`The microphone cannot be used (${err.message}). Allow it in the browser, or choose a file.`);
      return;
    }
    const recorder = new MediaRecorder(stream);
    const parts = [];
    const started = Date.now();
    const tick = () => {
      const seconds = (Date.now() - started) / 1000;
      this.recordTime.textContent = `Recording… ${seconds.toFixed(0)} s`;
      if (seconds >= this.limits.max_seconds) recorder.stop();
    };
    const timer = setInterval(tick, 250);
    recorder.addEventListener("dataavailable", (event) => parts.push(event.data));
    recorder.addEventListener("stop", () => {
      clearInterval(timer);
      stream.getTracks().forEach((track) => track.stop());
      this.recorder = null;
      this.recordButton.textContent = "Record";
      this.recordButton.setAttribute("aria-pressed", "false");
      const type = recorder.mimeType || "audio/webm";
      const seconds = (Date.now() - started) / 1000;
      this.recordTime.textContent = `Recorded ${seconds.toFixed(1)} s.`;
      const extension = type.includes("ogg") ? "ogg" : type.includes("mp4") ? "m4a" : "webm";
      this.file.value = "";
      this.useAudio(new Blob(parts, { type }), `recording.${extension}`);
    });
    this.recorder = recorder;
    recorder.start(250);
    this.recordButton.textContent = "Stop recording";
    this.recordButton.setAttribute("aria-pressed", "true");
    this.clearError();
    tick();
  }

  /** Plain-words checks before sending; null when all is well. */
  problem() {
    const name = this.form.elements.name.value.trim();
    if (!name) return "Give the voice a name.";
    if (!NAME.test(name)) {
      return "The name may use only letters, digits, - and _, must start with a letter or digit, and be at most 64 characters long.";
    }
    if (this.recorder) return "Stop the recording first.";
    if (!this.audio) return "Record the voice or choose an audio file.";
    const needers = this.transcriptNeededBy();
    if (needers.length && !this.transcript.value.trim()) {
      return `Type what the recording says: ${needers.join(" and ")} cannot clone without a transcript.`;
    }
    return null;
  }

  async submit() {
    const problem = this.problem();
    if (problem) {
      this.showError(problem);
      return;
    }
    this.clearError();
    const body = new FormData();
    body.append("name", this.form.elements.name.value.trim());
    body.append("file", this.audio.blob, this.audio.filename);
    const transcript = this.transcript.value.trim();
    if (transcript) body.append("transcript", transcript);
    const languages = this.languages.value.split(",").map((code) => code.trim()).filter(Boolean);
    if (languages.length) {
      body.append("languages", languages.join(","));
      body.append("default_language", languages[0]);
    }
    const engines = this.chosenEngines();
    if (engines.length) body.append("engines", engines.join(","));
    const button = this.root.querySelector("#clone-button");
    button.disabled = true;
    button.textContent = "Cloning…";
    try {
      const response = await request("v1/audio/voices", { method: "POST", body });
      const voice = await response.json();
      this.form.reset();
      this.languages.value = languages.join(", ") || browserLanguage();
      this.preview.hidden = true;
      this.audio = null;
      this.recordTime.textContent = "";
      this.updateTranscriptNeed();
      await this.onCloned(voice);
    } catch (err) {
      this.showError(`The voice was not cloned: ${err.message}`);
    } finally {
      button.disabled = false;
      button.textContent = "Clone voice";
    }
  }

  showError(message) {
    this.error.textContent = message;
  }

  clearError() {
    this.error.textContent = "";
  }
}
