// The page: wires the voice list, the Speak form, the clone form, the engine
// status and the API key dialog to the server's API.

import { ApiError, getJson, request, sendJson, setKeyPrompt, storeKey, storedKey, voicePath } from "./api.js";
import { CloneForm } from "./clone.js";
import { el } from "./dom.js";
import { Player, streams } from "./player.js";
import { languagePrefix, sampleSentence } from "./samples.js";
import { EngineStatus } from "./status.js";
import { VoiceList } from "./voices.js";

const $ = (selector) => document.querySelector(selector);

const notice = $("#notice");
const speakForm = $("#speak-form");
const voiceSelect = $("#speak-voice");
const speakStatus = $("#speak-status");
const download = $("#download");
const player = new Player($("#player"));
let downloadUrl = null;

function tell(message) {
  notice.textContent = message;
}

// --- API key --------------------------------------------------------------------

const keyDialog = $("#key-dialog");
let keyAnswer = null;

/** Show the key dialog; resolves to the key entered, or null when cancelled. */
function askForKey(reason) {
  if (keyAnswer) return keyAnswer;
  $("#key-reason").textContent = reason;
  $("#key-forget").hidden = !storedKey();
  const input = $("#key-input");
  input.value = "";
  keyAnswer = new Promise((resolve) => {
    keyDialog.addEventListener(
      "close",
      () => {
        keyAnswer = null;
        const choice = keyDialog.returnValue;
        if (choice === "forget") {
          storeKey("");
          tell("The API key was forgotten.");
        }
        resolve(choice === "save" && input.value.trim() ? input.value.trim() : null);
      },
      { once: true },
    );
  });
  keyDialog.returnValue = "";
  keyDialog.showModal();
  input.focus();
  return keyAnswer;
}

setKeyPrompt((message) => askForKey(`The server asks for an API key: ${message}`));
$("#key-button").addEventListener("click", async () => {
  const key = await askForKey("Enter the API key this server was configured with.");
  if (key) {
    storeKey(key);
    tell("The API key is saved in this browser.");
  }
});

// --- voices ---------------------------------------------------------------------

let voiceData = { voices: [] };

function fillVoiceSelect(voices) {
  const chosen = voiceSelect.value;
  const groups = new Map();
  for (const voice of voices.filter((v) => v.installed)) {
    if (!groups.has(voice.engine)) groups.set(voice.engine, []);
    groups.get(voice.engine).push(voice);
  }
  voiceSelect.replaceChildren(
    ...[...groups].map(([engine, list]) =>
      el("optgroup", { label: engine }, list.map((v) => el("option", { value: v.id, textContent: v.id }))),
    ),
  );
  if (voices.some((v) => v.id === chosen)) voiceSelect.value = chosen;
}

async function loadVoices() {
  try {
    voiceData = await getJson("v1/audio/voices");
  } catch (err) {
    tell(`The voices cannot be listed: ${err.message}`);
    return;
  }
  voiceList.render(voiceData);
  fillVoiceSelect(voiceData.voices || []);
  cloneForm.configure(voiceData.library);
}

function useVoice(entry) {
  voiceSelect.value = entry.id;
  $("#speak-text").focus();
  tell(`Speak now uses ${entry.id}.`);
}

async function renameVoice(clone, name) {
  if (!name) return false;
  try {
    await sendJson("PATCH", voicePath(clone.id), { display_name: name });
  } catch (err) {
    tell(`${clone.id} was not renamed: ${err.message}`);
    return false;
  }
  await loadVoices();
  tell(`${clone.id} is now called ${name}.`);
  voiceList.reveal(clone.served_as?.[0]?.voice || clone.id);
  return true;
}

async function deleteVoice(clone) {
  const label = clone.name === clone.id ? clone.id : `${clone.name} (${clone.id})`;
  if (!window.confirm(`Delete the cloned voice ${label}? Its recording is deleted too; this cannot be undone.`)) {
    return;
  }
  try {
    await request(voicePath(clone.id), { method: "DELETE" });
  } catch (err) {
    tell(`${label} was not deleted: ${err.message}`);
    return;
  }
  await loadVoices();
  tell(`${label} was deleted.`);
}

// --- speaking -------------------------------------------------------------------

function setStatus(state, message) {
  speakStatus.dataset.state = state;
  speakStatus.textContent = message;
}

function offerDownload(blob, format) {
  if (downloadUrl) URL.revokeObjectURL(downloadUrl);
  downloadUrl = URL.createObjectURL(blob);
  download.href = downloadUrl;
  download.download = `speech.${format}`;
  download.setAttribute("aria-disabled", "false");
}

function whyStopped(err) {
  if (err instanceof ApiError) return err.message;
  if (err instanceof TypeError) return "the audio stopped early: the server ended the stream (see its log)";
  return err.message;
}

/** Speak `body` with the shared player, reporting progress under the Speak form. */
async function speak(body, what) {
  const started = performance.now();
  setStatus("busy", `Synthesizing ${what}…`);
  $("#stop-button").disabled = false;
  try {
    const blob = await player.speak(body, () => {
      const wait = ((performance.now() - started) / 1000).toFixed(2);
      const how = streams(body.response_format) ? "playing while the rest is synthesized" : "receiving";
      setStatus("busy", `First audio after ${wait} s; ${how}…`);
    });
    offerDownload(blob, body.response_format);
    await new Promise((resolve) => setTimeout(resolve, 0));  // let the duration settle
    const seconds = player.audio.duration;
    const length = Number.isFinite(seconds) ? `${seconds.toFixed(1)} s of audio` : "audio";
    setStatus("done", `Done: ${length} of ${what}.`);
  } catch (err) {
    if (err.name === "AbortError") setStatus("stopped", "Stopped.");
    else setStatus("failed", `Could not speak: ${whyStopped(err)}`);
  } finally {
    if (!player.busy) $("#stop-button").disabled = true;
  }
}

speakForm.addEventListener("submit", (event) => {
  event.preventDefault();
  const input = $("#speak-text").value.trim();
  if (!input) {
    setStatus("failed", "Type some text to speak.");
    $("#speak-text").focus();
    return;
  }
  const voice = voiceSelect.value;
  const body = {
    model: "tts-1",
    voice,
    input,
    speed: Number($("#speak-speed").value),
    response_format: $("#speak-format").value,
  };
  speak(body, `your text with ${voice}`);
});

function playSample(entry) {
  const language = entry.languages?.[0];
  const body = {
    model: "tts-1",
    voice: entry.id,
    input: sampleSentence(language),
    response_format: "mp3",
  };
  if (language) body.language = language;
  speak(body, `a ${languagePrefix(language) || "sample"} sample of ${entry.id}`);
}

$("#stop-button").addEventListener("click", () => player.stop());
$("#speak-speed").addEventListener("input", (event) => {
  $("#speak-speed-value").textContent = `${Number(event.target.value).toFixed(2)}×`;
});
function formatHint() {
  const format = $("#speak-format").value;
  $("#format-hint").textContent = streams(format)
    ? `${format} plays while it is being synthesized.`
    : `${format} plays once it is complete (this browser cannot play it while it arrives; mp3 can).`;
}
$("#speak-format").addEventListener("change", formatHint);
download.addEventListener("click", (event) => {
  if (download.getAttribute("aria-disabled") === "true") event.preventDefault();
});

// --- start ----------------------------------------------------------------------

const voiceList = new VoiceList($("#voice-list"), $("#voice-search"), $("#voice-count"), {
  play: playSample,
  use: useVoice,
  rename: renameVoice,
  remove: deleteVoice,
});

const cloneForm = new CloneForm($("#clone"), async (voice) => {
  await loadVoices();
  const served = voice.served_as?.[0]?.voice;
  if (served) {
    voiceSelect.value = served;
    voiceList.reveal(served);
    tell(`The voice ${voice.id} is ready: press Play to hear it.`);
  } else {
    voiceList.reveal(voice.id);
    tell(`The voice ${voice.id} is saved, but no running engine offers it yet.`);
  }
});

const engineStatus = new EngineStatus($("#engine-table"));
formatHint();
loadVoices();
engineStatus.refresh();
