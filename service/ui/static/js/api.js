// hone's public API (/v1), called with the project API key this browser session holds.
// The key lives in sessionStorage only: never in a URL, a cookie or localStorage.

const KEY = "hone.apiKey";

export const session = {
  key: () => sessionStorage.getItem(KEY),
  signIn: (key) => sessionStorage.setItem(KEY, key),
  signOut: () => sessionStorage.removeItem(KEY),
};

/** An OpenAI error envelope ({"error": {message, type, param, code}}) as an exception. */
export class ApiError extends Error {
  constructor(status, error) {
    super(error?.message || `HTTP ${status}`);
    this.status = status;
    this.type = error?.type ?? null;
    this.param = error?.param ?? null;
    this.code = error?.code ?? null;
  }
}

function url(path, query) {
  const u = new URL(`/v1${path}`, window.location.origin);
  // An id of "." or ".." (also as %2e) passes encodeURIComponent unchanged and the URL parser
  // resolves it: "/jobs/.." would call another endpoint with the key. Refuse it instead.
  if (u.pathname !== `/v1${path}`) {
    throw new ApiError(400, { message: `"${path}" is not a valid id path: an id cannot be "." or "..".`, type: "invalid_request_error" });
  }
  for (const [k, v] of Object.entries(query || {})) {
    if (v !== undefined && v !== null && v !== "") u.searchParams.set(k, v);
  }
  return u;
}

function headers(extra = {}, key = session.key()) {
  return { Authorization: `Bearer ${key}`, ...extra };
}

async function failure(resp, { candidate = false } = {}) {
  let body = null;
  try { body = await resp.json(); } catch { /* not JSON */ }
  const err = new ApiError(resp.status, body?.error);
  if (resp.status === 401 && !candidate) {
    session.signOut();
    window.dispatchEvent(new CustomEvent("hone:signed-out", { detail: err }));
  }
  return err;
}

/** Call the API; returns the parsed JSON body, throws ApiError. `key`: try this key instead of
 *  the session's (signing in); a 401 then does not sign the session out. */
export async function api(path, { method = "GET", body, query, signal, key } = {}) {
  const init = { method, headers: headers({}, key ?? session.key()), signal };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers["Content-Type"] = "application/json";
  }
  const resp = await fetch(url(path, query), init);
  if (!resp.ok) throw await failure(resp, { candidate: key !== undefined });
  return resp.json();
}

/** Every item of a cursor-paged list (after = the last id, while has_more). */
export async function listAll(path, query = {}, { max = 10000, signal } = {}) {
  const items = [];
  let after;
  for (;;) {
    const page = await api(path, { query: { limit: 100, ...query, after }, signal });
    items.push(...page.data);
    if (!page.has_more || !page.data.length || items.length >= max) return items;
    after = page.data[page.data.length - 1].id;
  }
}

/** Upload a file (multipart, as the SDK does) with progress: onProgress(loaded, total). */
export function uploadFile(file, purpose, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", url("/files"));
    xhr.setRequestHeader("Authorization", `Bearer ${session.key()}`);
    xhr.responseType = "json";
    xhr.upload.addEventListener("progress", (e) => onProgress?.(e.loaded, e.lengthComputable ? e.total : file.size));
    xhr.addEventListener("load", () => {
      if (xhr.status >= 200 && xhr.status < 300) resolve(xhr.response);
      else reject(new ApiError(xhr.status, xhr.response?.error));
    });
    xhr.addEventListener("error", () => reject(new ApiError(0, { message: "The upload failed: network error." })));
    xhr.addEventListener("abort", () => reject(new ApiError(0, { message: "The upload was cancelled." })));
    const form = new FormData();
    form.append("purpose", purpose);
    form.append("file", file, file.name);
    xhr.send(form);
  });
}

/** Download a file's content (GET /v1/files/{id}/content) and save it as `filename`. */
export async function downloadFile(fileId, filename) {
  const resp = await fetch(url(`/files/${encodeURIComponent(fileId)}/content`), { headers: headers() });
  if (!resp.ok) throw await failure(resp);
  const href = URL.createObjectURL(await resp.blob());
  const a = document.createElement("a");
  a.href = href;
  a.download = filename;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(href), 10000);
}

/** POST a streamed request (stream: true) and call onEvent(json) for each server-sent event
 *  until [DONE]. Resolves when the stream ends; abort with `signal`. */
export async function streamEvents(path, body, onEvent, { signal } = {}) {
  const resp = await fetch(url(path), {
    method: "POST",
    headers: headers({ "Content-Type": "application/json", Accept: "text/event-stream" }),
    body: JSON.stringify({ ...body, stream: true }),
    signal,
  });
  if (!resp.ok) throw await failure(resp);
  const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      const data = block.split("\n").filter((l) => l.startsWith("data:")).map((l) => l.slice(5).trimStart()).join("\n");
      if (!data) continue;
      if (data === "[DONE]") return;
      const event = JSON.parse(data);
      if (event.error) throw new ApiError(500, event.error);
      onEvent(event);
    }
  }
}
