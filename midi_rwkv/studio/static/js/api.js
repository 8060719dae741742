// The studio's JSON API (docs/studio-api.md). Every call carries the launch token, read once from the URL.

const params = new URLSearchParams(location.search);
export const token = params.get("token") || "";

export class ApiError extends Error {
  constructor(message, status) {
    super(message);
    this.name = "ApiError";
    this.status = status;
  }
}

const STATUS_TEXT = {
  400: "the request was not accepted",
  401: "this page's link has no valid token: open the link that `midi-rwkv studio` printed",
  403: "the server refused the request (open the page through the printed 127.0.0.1 link)",
  404: "not found (the song may have been closed: at most 16 are kept)",
  409: "not possible right now",
  413: "the file is too large (at most 8 MB)",
};

async function errorFrom(response) {
  let message = "";
  try {
    const body = await response.json();
    if (body && typeof body.error === "string") message = body.error;
  } catch {
    // not JSON: fall back on the status below
  }
  if (!message) message = STATUS_TEXT[response.status] || `the server answered ${response.status}`;
  return new ApiError(message, response.status);
}

async function send(method, path, { json, body, headers = {} } = {}) {
  const init = { method, headers: { "X-Studio-Token": token, ...headers }, cache: "no-store" };
  if (json !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(json);
  } else if (body !== undefined) {
    init.body = body;
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch {
    throw new ApiError("cannot reach the studio server: is `midi-rwkv studio` still running?", 0);
  }
  if (!response.ok) throw await errorFrom(response);
  return response;
}

async function call(method, path, options) {
  const response = await send(method, path, options);
  try {
    return await response.json();
  } catch {
    throw new ApiError(`the server sent an unreadable answer to ${method} ${path}`, response.status);
  }
}

const enc = encodeURIComponent;

// A header value must be Latin-1; a file name outside printable ASCII is sent percent-encoded.
function headerSafe(name) {
  return /^[\x20-\x7e]*$/.test(name) ? name : encodeURIComponent(name);
}

export const api = {
  song: (id) => call("GET", `/api/songs/${enc(id)}`),
  upload: (bytes, name) =>
    call("POST", "/api/songs", { body: bytes, headers: { "Content-Type": "audio/midi", "X-Song-Name": headerSafe(name) } }),
  styles: () => call("GET", "/api/styles"),
  defaults: () => call("GET", "/api/defaults"),
  generate: (id, request) => call("POST", `/api/songs/${enc(id)}/generate`, { json: request }),
  job: (job) => call("GET", `/api/jobs/${enc(job)}`),
  cancel: (job) => call("POST", `/api/jobs/${enc(job)}/cancel`),
  accept: (id, candidate) => call("POST", `/api/songs/${enc(id)}/accept`, { json: { candidate } }),
  undo: (id) => call("POST", `/api/songs/${enc(id)}/undo`),
  redo: (id) => call("POST", `/api/songs/${enc(id)}/redo`),
  async exportSong(id, fallbackName) {
    const response = await send("GET", `/api/songs/${enc(id)}/export`);
    const disposition = response.headers.get("Content-Disposition") || "";
    const match = /filename\*?=(?:UTF-8'')?"?([^";]+)"?/i.exec(disposition);
    let filename = `${fallbackName}-studio.mid`;
    if (match) {
      try {
        filename = decodeURIComponent(match[1]);
      } catch {
        filename = match[1];
      }
    }
    return { blob: await response.blob(), filename };
  },
};
