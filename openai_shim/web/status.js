// Engine status from GET /health: loaded, loading (with its progress),
// idle (unloaded), failed with its reason, memory when known. Fields the
// server does not send are simply not shown.

import { el } from "./dom.js";
import { getJson } from "./api.js";

const STATES = {
  loaded: "Loaded",
  loading: "Loading…",
  unloading: "Unloading…",
  unloaded: "Idle (not loaded)",
  failed: "Failed",
};

function bytes(size) {
  if (size >= 1024 ** 3) return `${(size / 1024 ** 3).toFixed(1)} GB`;
  return `${Math.round(size / 1024 ** 2)} MB`;
}

/** Loading progress as text: the server's words, or a share (0..1) as a percentage. */
function progress(value) {
  if (typeof value === "string") return value;
  if (typeof value === "number") return `${Math.round(value * 100)} % loaded`;
  if (typeof value?.step === "string") {
    return typeof value.fraction === "number" ? `${value.step} (${Math.round(value.fraction * 100)} %)` : value.step;
  }
  return null;
}

/** What a failed engine, a loading one or an outside link (``detail``) has to say. */
function details(status) {
  const phrases = [];
  if (status.state === "failed" && status.error) phrases.push(status.error);
  if (status.state === "loading" && status.progress !== null && status.progress !== undefined) {
    phrases.push(progress(status.progress));
  }
  if (status.detail && status.detail.ok === false) {
    const why = status.detail.error || status.detail.reason || status.detail.message;
    phrases.push(why ? `not working: ${why}` : "not working");
  }
  if (typeof status.memory === "number") {
    phrases.push(status.state === "loaded" ? `memory ${bytes(status.memory)}` : `needs about ${bytes(status.memory)}`);
  }
  if (typeof status.running === "number" && (status.running || status.waiting)) {
    phrases.push(`${status.running} speaking, ${status.waiting ?? 0} waiting`);
  }
  if (typeof status.concurrency === "number") phrases.push(`${status.concurrency} at a time`);
  return phrases.filter(Boolean).join(" · ");
}

export class EngineStatus {
  constructor(table) {
    this.body = table.querySelector("tbody");
    this.summary = table.querySelector("#engine-summary");
    this.timer = null;
    document.addEventListener("visibilitychange", () => {
      if (!document.hidden) this.refresh();
    });
  }

  async refresh() {
    clearTimeout(this.timer);
    let loading = false;
    try {
      const health = await getJson("health");
      const engines = Object.entries(health.engines || {});
      loading = engines.some(([, status]) => status.state === "loading" || status.state === "unloading");
      const budget = typeof health.memory_budget === "number"
        ? ` Memory budget: ${bytes(health.memory_budget)}.`
        : "";
      this.summary.textContent = (health.status === "ok"
        ? "All engines are working."
        : "Some engines are not working: see why below.") + budget;
      this.body.replaceChildren(
        ...engines.map(([name, status]) =>
          el(
            "tr",
            { class: `state-${status.state}`, "data-engine": name },
            el("th", { scope: "row" }, name),
            el("td", {}, STATES[status.state] || String(status.state ?? "unknown")),
            el("td", {}, details(status)),
          ),
        ),
      );
    } catch (err) {
      this.summary.textContent = `The engine status cannot be read: ${err.message}`;
    }
    if (!document.hidden) this.timer = setTimeout(() => this.refresh(), loading ? 2000 : 15000);
  }
}
