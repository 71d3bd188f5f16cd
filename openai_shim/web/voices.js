// The voice list: every voice grouped by engine and by its main language, a
// search box, and per voice: play a sample, use it, and (cloned voices) rename
// or delete it.

import { el, uniqueId } from "./dom.js";
import { languageName } from "./samples.js";

/** Catalog voices and library entries joined: one entry per voice the page shows. */
export function voiceEntries(data) {
  const library = data.library?.voices || [];
  const clonedBy = new Map();
  for (const voice of library) {
    for (const served of voice.served_as || []) clonedBy.set(served.voice, voice);
  }
  const entries = (data.voices || []).map((voice) => ({
    ...voice,
    clone: clonedBy.get(voice.id) || null,
  }));
  const unused = library.filter((voice) => !(voice.served_as || []).length);
  return { entries, unused };
}

function countVoices(count) {
  return count === 1 ? "1 voice" : `${count} voices`;
}

function searchText(entry) {
  const parts = [entry.id, entry.engine, entry.description, entry.clone?.name];
  for (const code of entry.languages || []) parts.push(code, languageName(code));
  return parts.filter(Boolean).join(" ").toLowerCase();
}

export class VoiceList {
  /** `actions`: { play(entry), use(entry), rename(library voice, name), remove(library voice) }. */
  constructor(container, search, count, actions) {
    this.container = container;
    this.search = search;
    this.count = count;
    this.actions = actions;
    this.entries = [];
    search.addEventListener("input", () => this.filter());
  }

  render(data) {
    const { entries, unused } = voiceEntries(data);
    this.entries = entries;
    const byEngine = new Map();
    for (const entry of entries) {
      if (!byEngine.has(entry.engine)) byEngine.set(entry.engine, new Map());
      const language = entry.languages?.[0] || "";
      const groups = byEngine.get(entry.engine);
      if (!groups.has(language)) groups.set(language, []);
      groups.get(language).push(entry);
    }
    const sections = [...byEngine].map(([engine, groups]) => this.engineSection(engine, groups));
    if (unused.length) sections.push(this.unusedSection(unused));
    if (!sections.length) sections.push(el("p", { class: "hint" }, "No voices: no engine is running."));
    this.container.replaceChildren(...sections);
    this.filter();
  }

  engineSection(engine, groups) {
    const titleId = uniqueId("engine");
    const languages = [...groups].sort(([a], [b]) => languageName(a).localeCompare(languageName(b)));
    const total = [...groups.values()].reduce((sum, list) => sum + list.length, 0);
    return el(
      "section",
      { class: "engine-group", "aria-labelledby": titleId },
      el("h3", { id: titleId }, engine, el("span", { class: "hint" }, ` · ${countVoices(total)}`)),
      languages.map(([language, list]) =>
        el(
          "div",
          { class: "language-group" },
          el("h4", {}, languageName(language)),
          el("ul", { class: "voice-items" }, list.map((entry) => this.item(entry))),
        ),
      ),
    );
  }

  item(entry) {
    const clone = entry.clone;
    const label = clone && clone.name !== clone.id ? `${clone.name} (${entry.id})` : entry.id;
    const others = (entry.languages || []).slice(1);
    const play = el("button", {
      type: "button",
      class: "play",
      textContent: "▶ Play",
      disabled: !entry.installed,
      "aria-label": `Play a sample of ${label}`,
    });
    play.addEventListener("click", () => this.actions.play(entry, play));
    const use = el("button", {
      type: "button",
      textContent: "Use",
      disabled: !entry.installed,
      "aria-label": `Use ${label} in Speak`,
    });
    use.addEventListener("click", () => this.actions.use(entry));
    const li = el(
      "li",
      { class: "voice", "data-voice": entry.id, tabIndex: -1 },
      el(
        "div",
        { class: "voice-main" },
        el("span", { class: "voice-name" }, label),
        clone ? el("span", { class: "badge" }, "cloned") : null,
        entry.description ? el("span", { class: "voice-desc" }, entry.description) : null,
        others.length
          ? el("span", { class: "voice-langs" }, `Also speaks: ${others.join(", ")}`)
          : null,
        entry.installed ? null : el("span", { class: "error" }, `Not available: ${entry.reason || "not installed"}`),
      ),
      el("div", { class: "voice-actions" }, play, use, clone ? this.cloneButtons(clone) : null),
    );
    li.dataset.search = searchText(entry);
    return li;
  }

  cloneButtons(clone) {
    const rename = el("button", {
      type: "button",
      textContent: "Rename",
      "aria-label": `Rename ${clone.name}`,
    });
    rename.addEventListener("click", () => this.renameForm(clone, rename));
    const remove = el("button", {
      type: "button",
      class: "danger",
      textContent: "Delete",
      "aria-label": `Delete ${clone.name}`,
    });
    remove.addEventListener("click", () => this.actions.remove(clone));
    return [rename, remove];
  }

  /** An inline form in place of the Rename button. */
  renameForm(clone, button) {
    const inputId = uniqueId("rename");
    const input = el("input", { id: inputId, value: clone.name, required: true, maxLength: 200 });
    const cancel = el("button", { type: "button", textContent: "Cancel" });
    const form = el(
      "form",
      { class: "rename" },
      el("label", { for: inputId }, `New name for ${clone.id}`),
      input,
      el("button", { type: "submit", class: "primary", textContent: "Save" }),
      cancel,
    );
    const close = () => {
      form.replaceWith(button);
      button.focus();
    };
    cancel.addEventListener("click", close);
    form.addEventListener("keydown", (event) => {
      if (event.key === "Escape") close();
    });
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      if (await this.actions.rename(clone, input.value.trim())) return;
      input.focus();
    });
    button.replaceWith(form);
    input.select();
  }

  unusedSection(voices) {
    const titleId = uniqueId("engine");
    return el(
      "section",
      { class: "engine-group", "aria-labelledby": titleId },
      el("h3", { id: titleId }, "Voice library: not in use"),
      el("p", { class: "hint" }, "Cloned voices that no running engine offers."),
      el(
        "ul",
        { class: "voice-items" },
        voices.map((clone) => {
          const why = clone.error || "no running engine may use it (see its engines)";
          const li = el(
            "li",
            { class: "voice", "data-voice": clone.id, tabIndex: -1 },
            el(
              "div",
              { class: "voice-main" },
              el("span", { class: "voice-name" }, clone.name === clone.id ? clone.id : `${clone.name} (${clone.id})`),
              el("span", { class: "badge" }, "cloned"),
              el("span", { class: "error" }, `Not available: ${why}`),
            ),
            el("div", { class: "voice-actions" }, this.cloneButtons(clone)),
          );
          li.dataset.search = [clone.id, clone.name, why].join(" ").toLowerCase();
          return li;
        }),
      ),
    );
  }

  /** Show the voices matching every word of the search box. */
  filter() {
    const words = this.search.value.toLowerCase().split(/\s+/).filter(Boolean);
    let shown = 0;
    let total = 0;
    for (const li of this.container.querySelectorAll("li.voice")) {
      const match = words.every((word) => li.dataset.search.includes(word));
      li.hidden = !match;
      total += 1;
      if (match) shown += 1;
    }
    for (const group of this.container.querySelectorAll(".language-group, .engine-group")) {
      group.hidden = !group.querySelector("li.voice:not([hidden])");
    }
    this.count.textContent = words.length ? `${shown} of ${countVoices(total)} match` : countVoices(total);
  }

  /** Scroll to a voice, clearing a search that hides it, and move the focus there. */
  reveal(id) {
    let li = this.container.querySelector(`li[data-voice="${CSS.escape(id)}"]`);
    if (li?.hidden) {
      this.search.value = "";
      this.filter();
    }
    li = this.container.querySelector(`li[data-voice="${CSS.escape(id)}"]`);
    if (!li) return;
    li.classList.add("fresh");
    li.scrollIntoView({ block: "center" });
    li.focus();
  }
}
