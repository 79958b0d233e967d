// What every view of the dashboard uses: the API client, building elements (text only:
// untrusted text goes through textContent, never innerHTML), tables, the confirmation
// dialog and the time left of an account.

export const $ = (id) => document.getElementById(id);
export const SCOPES = ["sensor", "execution", "cli", "webhook", "admin"];

/// The session: its token and whether it may change things.
export const session = { token: sessionStorage.getItem("tokend-token"), role: null };

export function say(message, isError = false) {
  const status = $("status");
  status.textContent = message;
  status.classList.toggle("error", isError);
}

export async function api(method, path, body) {
  const headers = { Accept: "application/json" };
  if (session.token) headers.Authorization = `Bearer ${session.token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const data = await res.json().catch(() => ({}));
  if (!res.ok) {
    let message = data.error ? data.error.message : `HTTP ${res.status}`;
    if (res.status === 403) message = `not allowed for this sign-in (${session.role || "unknown role"}): ${message}`;
    const err = new Error(message);
    err.status = res.status;
    throw err;
  }
  return data;
}

/// Every page of a listing that pages with limit/offset and answers {data, total}.
export async function allPages(path) {
  const all = [];
  const sep = path.includes("?") ? "&" : "?";
  for (let offset = 0; ;) {
    const page = await api("GET", `${path}${sep}limit=1000&offset=${offset}`);
    all.push(...page.data);
    offset += page.data.length;
    if (!page.data.length || offset >= page.total) return all;
  }
}

export function el(tag, text, attrs = {}) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  return node;
}

/// A table: `headers` are column titles, `rows` gives for each item its cells (a cell is
/// a Node or text) and the row's attributes.
export function table(headers, items, row) {
  const t = el("table");
  const head = el("tr");
  for (const h of headers) head.append(el("th", h, { scope: "col" }));
  const thead = el("thead");
  thead.append(head);
  const body = el("tbody");
  for (const item of items) {
    const { cells, attrs = {} } = row(item);
    const tr = el("tr", undefined, attrs);
    for (const c of cells) tr.append(c instanceof Node ? c : el("td", c ?? "—"));
    body.append(tr);
  }
  t.append(thead, body);
  return t;
}

/// A cell of buttons. Changes need an admin: a viewer sees them disabled, with why.
export function actions(buttons) {
  const td = el("td", undefined, { class: "actions" });
  for (const { label, name, run, danger = false, change = true } of buttons) {
    const b = el("button", label, { type: "button", "aria-label": name });
    if (danger) b.classList.add("danger");
    if (change && !isAdmin()) {
      b.disabled = true;
      b.title = "Read-only: this needs an admin";
    }
    b.addEventListener("click", run);
    td.append(b);
  }
  return td;
}

export const isAdmin = () => session.role === "admin";

/// The warning window in hours (the "Warn within" input).
export const warnHours = () => Math.max(0, Number($("warn-hours").value || 6));

/// Asks before a change. Resolves to the reason typed (empty string when the dialog has no
/// reason field) or null when cancelled (Cancel, Escape).
export function confirmAction({ title, text, action, reason = null }) {
  return new Promise((resolve) => {
    const dialog = $("confirm-dialog");
    $("confirm-title").textContent = title;
    $("confirm-what").textContent = text;
    $("confirm-ok").textContent = action;
    $("confirm-reason-row").hidden = reason === null;
    $("confirm-reason").value = reason ?? "";
    dialog.returnValue = "";
    dialog.addEventListener("close", () => {
      resolve(dialog.returnValue === "confirm" ? $("confirm-reason").value : null);
    }, { once: true });
    dialog.showModal();
  });
}

function span(secs) {
  const hours = Math.abs(secs) / 3600;
  return hours < 1 ? `${Math.round(Math.abs(secs) / 60)} min`
    : hours > 72 ? `${(hours / 24).toFixed(1)} d` : `${hours.toFixed(1)} h`;
}

/// An account's time left, and the class that colours it. Revoked is not expired: an
/// account whose every token was revoked (no `expires_at`) is revoked too.
export function remaining(account, warn = warnHours(), now = Date.now()) {
  if (account.status === "revoked" || !account.expires_at) {
    return { text: account.revoked_at ? "revoked" : "revoked (every token)", cls: "revoked", state: "revoked" };
  }
  const secs = (Date.parse(account.expires_at) - now) / 1000;
  if (secs <= 0) return { text: `⚠ expired ${span(secs)} ago`, cls: "expired", state: "expired" };
  if (secs <= warn * 3600) return { text: `⚠ expires in ${span(secs)}`, cls: "soon", state: "soon" };
  return { text: `in ${span(secs)}`, cls: "fine", state: "active" };
}

export function showToken(newToken, what) {
  $("token-title").textContent = `New token: ${what}`;
  $("new-token").value = newToken;
  $("token-dialog").showModal();
  $("new-token").select();
}
