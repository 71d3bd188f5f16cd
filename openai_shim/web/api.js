// Calls to the server's HTTP API, with relative URLs (so the page works under
// Home Assistant's ingress prefix) and the API key, asked for on a 401.

const KEY_STORAGE = "polytts.apiKey";

/** An error answer, with the server's own message. */
export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

let askForKey = async () => null;

/** Set how a key is asked for: an async function(reason) giving the key, or null if refused. */
export function setKeyPrompt(prompt) {
  askForKey = prompt;
}

export function storedKey() {
  try {
    return localStorage.getItem(KEY_STORAGE) || "";
  } catch {
    return "";  // storage can be off (private mode, sandboxed frame)
  }
}

export function storeKey(key) {
  try {
    if (key) localStorage.setItem(KEY_STORAGE, key);
    else localStorage.removeItem(KEY_STORAGE);
  } catch {
    // the key then lasts until the page is closed
  }
  sessionKey = key;
}

let sessionKey = storedKey();

/** The message of an error response: OpenAI's {"error": {"message"}}, else its text. */
async function errorMessage(response) {
  const text = await response.text();
  try {
    const message = JSON.parse(text)?.error?.message;
    if (message) return message;
  } catch {
    // not JSON
  }
  return text.trim() || `${response.status} ${response.statusText}`;
}

/**
 * fetch() a path relative to the page, sending the API key; on a 401 ask for a
 * key and try again. Resolves to the Response when it is ok, else throws ApiError.
 */
export async function request(path, options = {}) {
  for (;;) {
    const headers = new Headers(options.headers);
    if (sessionKey) headers.set("Authorization", `Bearer ${sessionKey}`);
    let response;
    try {
      response = await fetch(path, { ...options, headers });
    } catch (err) {
      if (err.name === "AbortError") throw err;
      throw new ApiError(0, `The server cannot be reached (${err.message}).`);
    }
    if (response.ok) {
      // Only requests that change something prove a key: reading needs none.
      if (options.method && options.method !== "GET" && sessionKey !== storedKey()) storeKey(sessionKey);
      return response;
    }
    const message = await errorMessage(response);
    if (response.status !== 401) throw new ApiError(response.status, message);
    const key = await askForKey(message);
    if (!key) throw new ApiError(401, message);
    sessionKey = key;  // kept in storage once the server accepts it
  }
}

export async function getJson(path) {
  return (await request(path)).json();
}

export async function sendJson(method, path, body) {
  const response = await request(path, {
    method,
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
  return response.json();
}

export function voicePath(id) {
  return `v1/audio/voices/${encodeURIComponent(id)}`;
}
