// Calls to the JSON API. Every failure becomes an ApiError whose message a person can read:
// the problem document's `detail` for 4xx/5xx, the status and the start of the body for
// anything that is not JSON, and "did not answer" when the network fails.

const TOKEN_KEY = "oirl-admin-token";

// The admin token lives in this browser tab's sessionStorage only: typed once per session,
// sent as a bearer header, never put in the page's code or a URL.
export const token = {
  get: () => sessionStorage.getItem(TOKEN_KEY),
  set: (value) => value ? sessionStorage.setItem(TOKEN_KEY, value) : sessionStorage.removeItem(TOKEN_KEY),
};

export class ApiError extends Error {
  constructor(message, status, body) {
    super(message);
    this.status = status;
    this.body = body;
  }
}

const REASONS = {
  401: "the admin token is missing or wrong (type it in “Admin token” at the top right)",
  403: "this service has write and admin routes switched off (no OIRL_ADMIN_TOKEN configured)",
  503: "the service is not ready yet",
};

async function readError(response) {
  const text = await response.text();
  let body = null;
  try { body = JSON.parse(text); } catch { /* not JSON: said below */ }
  const reason = REASONS[response.status];
  let message;
  if (body && typeof body.detail === "string") {
    message = body.detail;
    if (response.status === 401) message += ` — ${reason}`;
  } else if (body && Array.isArray(body.detail)) {
    message = body.detail.map((d) => d.msg || JSON.stringify(d)).join("; ");
  } else {
    const snippet = text.replace(/<[^>]*>/g, " ").replace(/\s+/g, " ").trim().slice(0, 200);
    message = `HTTP ${response.status} ${response.statusText || ""}`.trim()
      + (reason ? ` — ${reason}` : "") + (snippet ? `: ${snippet}` : " (empty answer)");
  }
  const retry = response.headers.get("Retry-After");
  if (retry) message += ` (retry in ${retry} s)`;
  return new ApiError(message, response.status, body);
}

export async function api(path, { method = "GET", body, admin = false } = {}) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (admin && token.get()) headers.Authorization = `Bearer ${token.get()}`;
  let response;
  try {
    response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (err) {
    throw new ApiError(`the service did not answer (${err.message || err}); is it running?`, 0, null);
  }
  if (!response.ok) throw await readError(response);
  const text = await response.text();
  try {
    return text ? JSON.parse(text) : null;
  } catch {
    throw new ApiError(`HTTP ${response.status}: the answer was not JSON: ${text.slice(0, 200)}`, response.status, null);
  }
}
