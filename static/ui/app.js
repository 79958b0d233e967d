// The tokend dashboard: plain JavaScript modules against tokend's own API, no build step.
// This file signs in, switches views (#overview, #accounts, #audit, #keys, #users,
// #issuers) and keeps the data they share.

import { $, allPages, api, say, session } from "./common.js";
import { fitChart } from "./chart.js";
import { onChange, renderAccounts, wireAccounts } from "./accounts.js";
import { addIssuer, loadAudit, loadIssuers, loadKeys, loadUsers, renderOverview } from "./views.js";

const VIEWS = ["overview", "accounts", "audit", "keys", "users", "issuers"];
/// What the views share: every account (revoked ones too) and who is who, for the audit.
const data = { accounts: [], names: new Map() };

function currentView() {
  const name = location.hash.slice(1);
  return VIEWS.includes(name) ? name : "overview";
}

async function loadAccounts() {
  data.accounts = await allPages("/service-accounts?status=all");
  for (const a of data.accounts) data.names.set(a.identity_id, a.name);
}

async function loadNames() {
  for (const u of await loadUsers()) data.names.set(u.identity_id, u.login);
}

/// Shows one view and loads what it needs, fresh.
async function show(view = currentView()) {
  for (const v of VIEWS) $(v).hidden = v !== view;
  for (const link of document.querySelectorAll("nav a")) {
    if (link.getAttribute("href") === `#${view}`) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  try {
    if (view === "overview") { await loadAccounts(); renderOverview(data.accounts); }
    if (view === "accounts") { await loadAccounts(); renderAccounts(data.accounts); }
    if (view === "audit") { await loadAccounts(); await loadNames(); await loadAudit(data.names); }
    if (view === "keys") await loadKeys();
    if (view === "users") await loadNames();
    if (view === "issuers") await loadIssuers();
    $("main").dataset.loaded = view;
  } catch (e) {
    say(`Loading ${view} failed: ${e.message}`, true);
  }
}

/// Who is signed in, and whether they may change things: an admin token, or a cli token of
/// a user whose role is admin. Anything else reads only.
async function roleOf(me, known) {
  if (known) return known;
  if (me.scope === "admin") return "admin";
  if (me.scope !== "cli") return "none";
  try { return (await api("GET", `/users/${me.identity_id}`)).role; } catch { return "viewer"; }
}

async function enter(knownRole = null) {
  let me;
  try {
    me = await api("GET", "/auth/whoami");
  } catch (e) {
    sessionStorage.removeItem("tokend-token");
    session.token = null;
    say(`Sign-in failed: ${e.message}`, true);
    return;
  }
  session.role = await roleOf(me, knownRole);
  $("who").textContent = `Signed in as ${me.name} (${session.role === "admin" ? "admin" : `${session.role}, read-only`})`;
  $("read-only").hidden = session.role === "admin";
  if (session.role !== "admin" && session.role !== "viewer") {
    $("read-only").textContent = `A ${me.scope} token may not manage tokend: sign in as an admin, or as a viewer to read.`;
  }
  $("signin").hidden = true;
  $("app").hidden = false;
  $("signout").hidden = false;
  say("");
  await show();
}

function signOut() {
  sessionStorage.removeItem("tokend-token");
  session.token = null;
  location.hash = "";
  location.reload();
}

function hideToken() {
  $("new-token").value = "";
  $("token-dialog").close();
}

document.addEventListener("DOMContentLoaded", () => {
  onChange(() => show());
  wireAccounts();
  $("login-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    try {
      const res = await api("POST", "/auth/login", { login: $("login").value, password: $("password").value });
      session.token = res.token;
      sessionStorage.setItem("tokend-token", session.token);
      $("password").value = "";
      await enter(res.role);
    } catch (e) { say(`Sign-in failed: ${e.message}`, true); }
  });
  $("token-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    session.token = $("token").value.trim();
    $("token").value = "";
    sessionStorage.setItem("tokend-token", session.token);
    await enter();
  });
  $("copy-token").addEventListener("click", async () => {
    try { await navigator.clipboard.writeText($("new-token").value); say("Token copied."); }
    catch { $("new-token").select(); say("Select the token and copy it (Ctrl+C)."); }
  });
  $("close-token").addEventListener("click", hideToken);
  $("token-dialog").addEventListener("close", () => { $("new-token").value = ""; });
  $("refresh").addEventListener("click", () => show());
  $("show-revoked").addEventListener("change", () => renderAccounts(data.accounts));
  $("warn-hours").addEventListener("change", () => show());
  $("signout").addEventListener("click", signOut);
  $("issuer-form").addEventListener("submit", addIssuer);
  window.addEventListener("hashchange", () => { if (session.token && !$("app").hidden) show(); });
  window.addEventListener("resize", () => fitChart($("expiry-chart")));
  if (session.token) enter();
});
