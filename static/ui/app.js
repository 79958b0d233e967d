// The tokend dashboard: plain JavaScript against tokend's own API, no build step.
// Untrusted text only ever goes through textContent, never innerHTML.
"use strict";

const $ = (id) => document.getElementById(id);
const SCOPES = ["sensor", "execution", "cli", "webhook", "admin"];
let token = sessionStorage.getItem("tokend-token");

function say(message, isError = false) {
  const status = $("status");
  status.textContent = message;
  status.classList.toggle("error", isError);
}

async function api(method, path, body) {
  const headers = { Accept: "application/json" };
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const data = await res.json().catch(() => ({}));
  if (!res.ok) {
    const err = new Error(data.error ? data.error.message : `HTTP ${res.status}`);
    err.status = res.status;
    throw err;
  }
  return data;
}

function el(tag, text, attrs = {}) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  return node;
}

function remaining(account) {
  if (account.status === "revoked") return { text: "revoked", cls: "revoked" };
  if (!account.expires_at) return { text: "no live token", cls: "expired" };
  const secs = (Date.parse(account.expires_at) - Date.now()) / 1000;
  const hours = Math.abs(secs) / 3600;
  const span = hours < 1 ? `${Math.round(Math.abs(secs) / 60)} min`
    : hours > 72 ? `${(hours / 24).toFixed(1)} d` : `${hours.toFixed(1)} h`;
  if (secs <= 0) return { text: `⚠ expired ${span} ago`, cls: "expired" };
  const warn = Number($("warn-hours").value || 6);
  if (hours <= warn) return { text: `⚠ expires in ${span}`, cls: "soon" };
  return { text: `in ${span}`, cls: "fine" };
}

function showToken(newToken, what) {
  $("token-title").textContent = `New token: ${what}`;
  $("new-token").value = newToken;
  $("token-dialog").showModal();
  $("new-token").select();
}

function hideToken() {
  $("new-token").value = "";
  $("token-dialog").close();
}

function askReason(account) {
  return new Promise((resolve) => {
    $("revoke-what").textContent = `${account.name} (account ${account.identity_id}, ${account.scope}): every live token of it stops working now.`;
    const dialog = $("revoke-dialog");
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "revoke" ? $("revoke-reason").value : null), { once: true });
    dialog.showModal();
  });
}

async function revoke(account) {
  const reason = await askReason(account);
  if (reason === null) return;
  try {
    const res = await api("DELETE", `/service-accounts/${account.identity_id}`, reason ? { reason } : {});
    say(`Revoked ${account.name} (${res.revoked_tokens} live token(s)).`);
    await load();
  } catch (e) { say(`Revoking failed: ${e.message}`, true); }
}

async function mint(account) {
  try {
    const res = await api("POST", `/service-accounts/${account.identity_id}/tokens`, {});
    showToken(res.token, `${account.name} (expires ${res.expires_at})`);
    await load();
  } catch (e) { say(`Minting failed: ${e.message}`, true); }
}

async function rotate(account) {
  try {
    const body = { name: account.name, scope: account.scope };
    if (account.description) body.description = account.description;
    if (account.metadata && Object.keys(account.metadata).length) body.metadata = account.metadata;
    const created = await api("POST", "/service-accounts", body);
    await api("DELETE", `/service-accounts/${account.identity_id}`, { reason: "Token rotation" });
    showToken(created.token, `${created.name}, new account ${created.identity_id} (old ${account.identity_id} revoked)`);
    await load();
  } catch (e) { say(`Rotation failed: ${e.message}`, true); }
}

// OAuth client secrets of one account: listed (never the secret), created (shown once in the
// token dialog), revoked.
let secretsOf = null;

async function loadSecrets() {
  const list = await api("GET", `/service-accounts/${secretsOf.identity_id}/client-secrets`);
  $("secrets-client").textContent = `${secretsOf.name}: client_id ${list.client_id}`;
  const container = $("secret-list");
  if (!list.data.length) { container.replaceChildren(el("p", "No client secrets yet.")); return; }
  const t = el("table");
  const head = el("tr");
  for (const h of ["Secret id", "Status", "Created", "Expires", ""]) head.append(el("th", h, { scope: "col" }));
  const thead = el("thead");
  thead.append(head);
  t.append(thead);
  const body = el("tbody");
  for (const secret of list.data) {
    const row = el("tr", undefined, { "data-secret": secret.secret_id });
    row.append(el("td", secret.secret_id), el("td", secret.status, { class: secret.status === "active" ? "" : "revoked" }),
      el("td", secret.created_at), el("td", secret.expires_at));
    const actions = el("td", undefined, { class: "actions" });
    if (secret.status === "active") {
      const b = el("button", "Revoke", { type: "button", class: "danger", "aria-label": `Revoke secret ${secret.secret_id}` });
      b.addEventListener("click", async () => {
        try {
          await api("DELETE", `/service-accounts/${secretsOf.identity_id}/client-secrets/${secret.secret_id}`, { reason: "revoked from the dashboard" });
          say(`Revoked client secret ${secret.secret_id}.`);
          await loadSecrets();
        } catch (e) { say(`Revoking the secret failed: ${e.message}`, true); }
      });
      actions.append(b);
    }
    row.append(actions);
    body.append(row);
  }
  t.append(body);
  container.replaceChildren(t);
}

async function openSecrets(account) {
  secretsOf = account;
  try {
    await loadSecrets();
    $("secrets-dialog").showModal();
  } catch (e) { say(`Loading the client secrets failed: ${e.message}`, true); }
}

async function createSecret(ev) {
  ev.preventDefault();
  const body = {};
  if ($("secret-days").value) body.expires_in_days = Number($("secret-days").value);
  if ($("secret-overlap").value !== "") body.overlap_seconds = Number($("secret-overlap").value) * 3600;
  try {
    const res = await api("POST", `/service-accounts/${secretsOf.identity_id}/client-secrets`, body);
    await loadSecrets();
    $("secrets-dialog").close();
    showToken(res.client_secret, `client secret of ${res.client_id} (expires ${res.expires_at})`);
  } catch (e) { say(`Creating the secret failed: ${e.message}`, true); }
}

function table(accounts) {
  const t = el("table");
  const head = el("tr");
  for (const h of ["ID", "Name", "Status", "Expires", "Time left", "Last used", "Actions"]) head.append(el("th", h, { scope: "col" }));
  const thead = el("thead");
  thead.append(head);
  t.append(thead);
  const body = el("tbody");
  for (const a of accounts) {
    const row = el("tr", undefined, { "data-id": a.identity_id });
    row.append(el("td", a.identity_id), el("td", a.name), el("td", a.status, { class: a.status === "active" ? "" : a.status }));
    row.append(el("td", a.expires_at || "—"));
    const left = remaining(a);
    row.append(el("td", left.text, { class: left.cls }));
    row.append(el("td", a.last_used_at || "never"));
    const actions = el("td", undefined, { class: "actions" });
    if (a.status !== "revoked") {
      const buttons = [["Revoke", revoke], ["Rotate", rotate], ["Mint token", mint], ["Client secrets", openSecrets]];
      for (const [label, action] of buttons) {
        const b = el("button", label, { type: "button", "aria-label": `${label} ${a.name} (${a.identity_id})` });
        if (label === "Revoke") b.classList.add("danger");
        b.addEventListener("click", () => action(a));
        actions.append(b);
      }
    }
    row.append(actions);
    body.append(row);
  }
  t.append(body);
  return t;
}

async function load() {
  const status = $("show-revoked").checked ? "all" : "";
  const all = [];
  for (let offset = 0; ; ) {
    const page = await api("GET", `/service-accounts?limit=1000&offset=${offset}${status ? "&status=all" : ""}`);
    all.push(...page.data);
    offset += page.data.length;
    if (!page.data.length || offset >= page.total) break;
  }
  const container = $("scopes");
  container.replaceChildren();
  for (const scope of SCOPES) {
    const accounts = all.filter((a) => a.scope === scope);
    if (!accounts.length) continue;
    const section = el("section", undefined, { "aria-label": `${scope} accounts` });
    section.append(el("h3", `${scope} (${accounts.length})`));
    section.append(table(accounts));
    container.append(section);
  }
  if (!all.length) container.append(el("p", "No service accounts yet."));
}

async function changeUser(user, change, what) {
  if (!confirm(`${what} ${user.login}? Every token of theirs is revoked at once.`)) return;
  try {
    const res = change === null
      ? await api("DELETE", `/users/${user.identity_id}`)
      : await api("PATCH", `/users/${user.identity_id}`, change);
    say(`${what}: ${res.login} (${res.revoked_tokens} token(s) revoked).`);
    await loadUsers();
  } catch (e) { say(`${what} failed: ${e.message}`, true); }
}

async function enableUser(user) {
  try {
    await api("PATCH", `/users/${user.identity_id}`, { disabled: false });
    say(`Enabled ${user.login}.`);
    await loadUsers();
  } catch (e) { say(`Enabling failed: ${e.message}`, true); }
}

function usersTable(users) {
  const t = el("table");
  const head = el("tr");
  for (const h of ["ID", "Login", "Role", "Status", "Last used", "Actions"]) head.append(el("th", h, { scope: "col" }));
  const thead = el("thead");
  thead.append(head);
  t.append(thead);
  const body = el("tbody");
  for (const u of users) {
    const row = el("tr", undefined, { "data-user": u.identity_id });
    const status = u.disabled ? "disabled" : "enabled";
    row.append(el("td", u.identity_id), el("td", u.login), el("td", u.role), el("td", status, { class: u.disabled ? "revoked" : "" }));
    row.append(el("td", u.last_used_at || "never"));
    const actions = el("td", undefined, { class: "actions" });
    const other = u.role === "admin" ? "viewer" : "admin";
    const buttons = [
      u.disabled ? ["Enable", () => enableUser(u)] : ["Disable", () => changeUser(u, { disabled: true }, "Disable")],
      [`Make ${other}`, () => changeUser(u, { role: other }, `Make ${other}`)],
      ["Delete", () => changeUser(u, null, "Delete")],
    ];
    for (const [label, action] of buttons) {
      const b = el("button", label, { type: "button", "aria-label": `${label} user ${u.login}` });
      if (label === "Disable" || label === "Delete") b.classList.add("danger");
      b.addEventListener("click", action);
      actions.append(b);
    }
    row.append(actions);
    body.append(row);
  }
  t.append(body);
  return t;
}

async function loadUsers() {
  const list = await api("GET", "/users");
  const container = $("user-list");
  container.replaceChildren(list.data.length ? usersTable(list.data) : el("p", "No users yet."));
}

function issuersTable(issuers) {
  const t = el("table");
  const head = el("tr");
  for (const h of ["ID", "Issuer", "Keys", "Audiences", "Rules", "Workloads", "Actions"]) head.append(el("th", h, { scope: "col" }));
  const thead = el("thead");
  thead.append(head);
  t.append(thead);
  const body = el("tbody");
  for (const i of issuers) {
    const row = el("tr", undefined, { "data-issuer": i.id });
    const rules = i.rules.map((r) => `${r.scope} ${r.name}`).join("; ");
    row.append(el("td", i.id), el("td", i.issuer), el("td", i.jwks_uri || "inline JWKS"),
      el("td", i.audiences.join(", ")), el("td", rules), el("td", i.workloads ?? "—"));
    const actions = el("td", undefined, { class: "actions" });
    const b = el("button", "Remove", { type: "button", class: "danger", "aria-label": `Remove issuer ${i.issuer}` });
    b.addEventListener("click", async () => {
      if (!confirm(`Remove ${i.issuer}? Its tokens are refused from then on; tokens already issued stay until revoked.`)) return;
      try {
        await api("DELETE", `/federation/issuers/${i.id}`);
        say(`Removed issuer ${i.issuer}.`);
        await loadIssuers();
      } catch (e) { say(`Removing failed: ${e.message}`, true); }
    });
    actions.append(b);
    row.append(actions);
    body.append(row);
  }
  t.append(body);
  return t;
}

async function loadIssuers() {
  const list = await api("GET", "/federation/issuers");
  $("issuer-list").replaceChildren(list.data.length ? issuersTable(list.data) : el("p", "No trusted issuers yet."));
}

async function addIssuer(ev) {
  ev.preventDefault();
  let doc;
  try { doc = JSON.parse($("issuer-doc").value); } catch { say("The issuer must be a JSON object (see docs/oauth.md).", true); return; }
  try {
    const res = await api("POST", "/federation/issuers", doc);
    say(`Added issuer ${res.issuer} (id ${res.id}).`);
    await loadIssuers();
  } catch (e) { say(`Adding the issuer failed: ${e.message}`, true); }
}

async function enter() {
  let me;
  try {
    me = await api("GET", "/auth/whoami");
  } catch (e) {
    sessionStorage.removeItem("tokend-token");
    token = null;
    say(`Sign-in failed: ${e.message}`, true);
    return;
  }
  try {
    $("who").textContent = `Signed in as ${me.name} (${me.scope})`;
    $("signin").hidden = true;
    $("accounts").hidden = false;
    $("create").hidden = false;
    $("users").hidden = false;
    $("issuers").hidden = false;
    $("signout").hidden = false;
    await load();
    await loadUsers();
    await loadIssuers();
    say("");
  } catch (e) {
    say(`Loading the accounts failed: ${e.message}`, true);
  }
}

function signOut() {
  sessionStorage.removeItem("tokend-token");
  token = null;
  location.reload();
}

document.addEventListener("DOMContentLoaded", () => {
  $("login-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    try {
      const res = await api("POST", "/auth/login", { login: $("login").value, password: $("password").value });
      token = res.token;
      sessionStorage.setItem("tokend-token", token);
      $("password").value = "";
      await enter();
    } catch (e) { say(`Sign-in failed: ${e.message}`, true); }
  });
  $("token-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    token = $("token").value.trim();
    $("token").value = "";
    sessionStorage.setItem("tokend-token", token);
    await enter();
  });
  $("create-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const body = { name: $("new-name").value, scope: $("new-scope").value };
    if ($("new-ttl").value) body.ttl_hours = Number($("new-ttl").value);
    const meta = $("new-metadata").value.trim();
    if (meta) {
      try { body.metadata = JSON.parse(meta); } catch { say("Metadata must be JSON, e.g. {\"trigger_types\": [\"core.timer\"]}", true); return; }
    }
    try {
      const res = await api("POST", "/service-accounts", body);
      showToken(res.token, `${res.name}, account ${res.identity_id} (expires ${res.expires_at})`);
      say(`Created ${res.name} (account ${res.identity_id}).`);
      await load();
    } catch (e) { say(`Creating failed: ${e.message}`, true); }
  });
  $("new-scope").addEventListener("change", () => {
    const examples = {
      sensor: '{"trigger_types": ["core.timer"]}',
      execution: '{"execution_id": 1, "action_ref": "core.http"}',
      webhook: '{"allowed_paths": ["/webhooks/github"]}',
      cli: "{}", admin: "{}",
    };
    $("new-metadata").value = examples[$("new-scope").value];
  });
  $("copy-token").addEventListener("click", async () => {
    try { await navigator.clipboard.writeText($("new-token").value); say("Token copied."); }
    catch { $("new-token").select(); say("Select the token and copy it (Ctrl+C)."); }
  });
  $("close-token").addEventListener("click", hideToken);
  $("token-dialog").addEventListener("close", () => { $("new-token").value = ""; });
  $("refresh").addEventListener("click", () => load().catch((e) => say(e.message, true)));
  $("show-revoked").addEventListener("change", () => load().catch((e) => say(e.message, true)));
  $("warn-hours").addEventListener("change", () => load().catch((e) => say(e.message, true)));
  $("signout").addEventListener("click", signOut);
  $("secret-form").addEventListener("submit", createSecret);
  $("issuer-form").addEventListener("submit", addIssuer);
  $("close-secrets").addEventListener("click", () => $("secrets-dialog").close());
  if (token) enter();
});
