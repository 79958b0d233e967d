// The read-mostly views: Overview (counts and the expiry chart), Audit, Keys, Users and
// Trusted issuers.

import { $, SCOPES, actions, api, confirmAction, el, isAdmin, remaining, say, table, warnHours } from "./common.js";
import { drawExpiries } from "./chart.js";

// ---- Overview ----------------------------------------------------------------------------

/// Counts per scope and state, the chart, and what expires inside the warning window.
export function renderOverview(accounts) {
  const warn = warnHours();
  const now = Date.now();
  const states = accounts.map((a) => ({ a, left: remaining(a, warn, now) }));
  const count = (scope, state) => states.filter((s) => (!scope || s.a.scope === scope) && s.left.state === state).length;
  const scopes = SCOPES.filter((s) => accounts.some((a) => a.scope === s));
  const next = (scope) => states.filter((s) => s.a.scope === scope && s.a.status === "active")
    .map((s) => s.a.expires_at).sort()[0];
  const cell = (n, cls) => el("td", n, { class: n ? cls : "" });
  const rows = [...scopes, null];
  $("counts").replaceChildren(table(
    ["Scope", "Active", `Expiring within ${warn} h`, "Expired", "Revoked", "Next expiry"], rows,
    (scope) => ({
      attrs: { "data-scope": scope || "all" },
      cells: [el(scope ? "td" : "th", scope || "all scopes", scope ? {} : { scope: "row" }),
        cell(count(scope, "active") + count(scope, "soon"), "fine"), cell(count(scope, "soon"), "soon"),
        cell(count(scope, "expired"), "expired"), cell(count(scope, "revoked"), "revoked"),
        scope ? next(scope) || "—" : ""],
    })));

  $("warn-label").textContent = `${warn} h`;
  drawExpiries($("expiry-chart"), $("expiry-numbers"), accounts, warn);

  const urgent = states.filter((s) => s.left.state === "soon" || s.left.state === "expired")
    .sort((x, y) => Date.parse(x.a.expires_at) - Date.parse(y.a.expires_at));
  $("urgent").replaceChildren(urgent.length
    ? table(["Name", "Scope", "ID", "Expires", "Time left"], urgent, ({ a, left }) => ({
      attrs: { "data-id": a.identity_id },
      cells: [a.name, a.scope, String(a.identity_id), a.expires_at, el("td", left.text, { class: left.cls })],
    }))
    : el("p", `Nothing expires within ${warn} h.`, { class: "fine" }));
}

// ---- Audit -------------------------------------------------------------------------------

const AUDIT_PAGE = 50;
/// Event ids where each page shown so far starts (for "Newer").
let auditPages = [];

function short(value, n = 8) { return value ? String(value).slice(0, n) : "—"; }

/// One page of the trail, newest first; `before` is the id the page starts below.
export async function loadAudit(names, before = null) {
  const query = `limit=${AUDIT_PAGE}${before ? `&before=${before}` : ""}`;
  const page = await api("GET", `/audit?${query}`);
  if (before === null) auditPages = [];
  const who = (id) => (id == null ? "tokend" : names.get(id) ? `${names.get(id)} (${id})` : String(id));
  $("audit-list").replaceChildren(page.data.length
    ? table(["When", "Action", "By", "On", "Token", "Reason", "From", "Detail"], page.data, (e) => ({
      attrs: { "data-event": e.id },
      cells: [e.occurred_at, e.action, who(e.actor_id), e.identity_id == null ? "—" : who(e.identity_id),
        el("td", short(e.token_id), { title: e.token_id || "" }), e.reason, e.remote_addr,
        el("td", e.detail ? JSON.stringify(e.detail) : "—", { class: "detail" })],
    }))
    : el("p", "No events."));
  const last = page.data.at(-1);
  $("audit-older").disabled = page.data.length < AUDIT_PAGE;
  $("audit-older").onclick = () => { auditPages.push(before); loadAudit(names, last.id).catch((e) => say(e.message, true)); };
  $("audit-newer").disabled = before === null;
  $("audit-newer").onclick = () => loadAudit(names, auditPages.pop() ?? null).then(() => {}, (e) => say(e.message, true));
  $("audit-page").textContent = page.data.length
    ? `events ${page.data[0].id} to ${last.id}` : "";
}

// ---- Keys --------------------------------------------------------------------------------

export async function loadKeys() {
  const list = await api("GET", "/keys");
  $("key-list").replaceChildren(list.data.length
    ? table(["Key id", "Algorithm", "State", "Created", "Signing since", "Verifies until", "Retired"], list.data, (k) => ({
      attrs: { "data-kid": k.kid, "data-state": k.status },
      cells: [el("td", k.kid, { class: "mono" }), k.alg, el("td", k.status, { class: `key-${k.status}` }),
        k.created_at, k.activated_at, k.retire_after, k.retired_at],
    }))
    : el("p", "No managed signing keys (HS256: the shared secret signs)."));
}

// ---- Users -------------------------------------------------------------------------------

async function changeUser(user, change, what) {
  const ok = await confirmAction({
    title: `${what} ${user.login}?`,
    text: `Every token of ${user.login} is revoked at once.`,
    action: what,
  });
  if (ok === null) { say(`Nothing changed: ${user.login} is as before.`); return; }
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

/// The users; returns them (the audit view names actors with them).
export async function loadUsers() {
  const list = await api("GET", "/users");
  $("user-list").replaceChildren(list.data.length
    ? table(["ID", "Login", "Role", "Status", "Created", "Last used", "Actions"], list.data, (u) => {
      const other = u.role === "admin" ? "viewer" : "admin";
      return {
        attrs: { "data-user": u.identity_id },
        cells: [String(u.identity_id), u.login, u.role,
          el("td", u.disabled ? "disabled" : "enabled", { class: u.disabled ? "revoked" : "" }),
          u.created_at, u.last_used_at || "never",
          actions([
            u.disabled
              ? { label: "Enable", name: `Enable user ${u.login}`, run: () => enableUser(u) }
              : { label: "Disable", name: `Disable user ${u.login}`, run: () => changeUser(u, { disabled: true }, "Disable"), danger: true },
            { label: `Make ${other}`, name: `Make ${other} user ${u.login}`, run: () => changeUser(u, { role: other }, `Make ${other}`) },
            { label: "Delete", name: `Delete user ${u.login}`, run: () => changeUser(u, null, "Delete"), danger: true },
          ])],
      };
    })
    : el("p", "No users yet."));
  return list.data;
}

// ---- Trusted issuers ---------------------------------------------------------------------

export async function loadIssuers() {
  const list = await api("GET", "/federation/issuers");
  $("issuer-list").replaceChildren(list.data.length
    ? table(["ID", "Issuer", "Keys", "Audiences", "Rules", "Workloads", "Actions"], list.data, (i) => ({
      attrs: { "data-issuer": i.id },
      cells: [String(i.id), i.issuer, i.jwks_uri || "inline JWKS", i.audiences.join(", "),
        i.rules.map((r) => `${r.scope} ${r.name}`).join("; "), i.workloads ?? "—",
        actions([{
          label: "Remove", name: `Remove issuer ${i.issuer}`, danger: true,
          run: async () => {
            const ok = await confirmAction({
              title: `Remove ${i.issuer}?`,
              text: "Its tokens are refused from then on; tokens already issued stay until revoked.",
              action: "Remove",
            });
            if (ok === null) return;
            try {
              await api("DELETE", `/federation/issuers/${i.id}`);
              say(`Removed issuer ${i.issuer}.`);
              await loadIssuers();
            } catch (e) { say(`Removing failed: ${e.message}`, true); }
          },
        }])],
    }))
    : el("p", "No trusted issuers yet."));
  $("issuer-form").querySelector("button[type=submit]").disabled = !isAdmin();
}

export async function addIssuer(ev) {
  ev.preventDefault();
  let doc;
  try { doc = JSON.parse($("issuer-doc").value); } catch { say("The issuer must be a JSON object (see docs/oauth.md).", true); return; }
  try {
    const res = await api("POST", "/federation/issuers", doc);
    say(`Added issuer ${res.issuer} (id ${res.id}).`);
    await loadIssuers();
  } catch (e) { say(`Adding the issuer failed: ${e.message}`, true); }
}
