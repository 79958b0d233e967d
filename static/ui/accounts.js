// The Accounts view: service accounts per scope with their real status and time left;
// revoke, rotate (each asked first), mint a token, OAuth client secrets; the create form.

import { $, SCOPES, actions, api, confirmAction, el, isAdmin, remaining, say, showToken, table } from "./common.js";

/// Called after a change so every view shows it (set by app.js).
let reload = async () => {};
export function onChange(fn) { reload = fn; }

async function revoke(account) {
  const reason = await confirmAction({
    title: `Revoke ${account.name}?`,
    text: `Account ${account.identity_id} (${account.scope}) is revoked and every live token of it stops working now, on every replica. This cannot be undone.`,
    action: "Revoke",
    reason: "",
  });
  if (reason === null) { say(`Nothing revoked: ${account.name} is unchanged.`); return; }
  try {
    const res = await api("DELETE", `/service-accounts/${account.identity_id}`, reason ? { reason } : {});
    say(`Revoked ${account.name} (${res.revoked_tokens} live token(s)).`);
    await reload();
  } catch (e) { say(`Revoking failed: ${e.message}`, true); }
}

async function rotate(account) {
  const reason = await confirmAction({
    title: `Rotate ${account.name}?`,
    text: `A new account named ${account.name} with the same scope, description and metadata gets a token (shown once); then account ${account.identity_id} and every live token of it are revoked.`,
    action: "Rotate",
    reason: "Token rotation",
  });
  if (reason === null) { say(`Nothing rotated: ${account.name} is unchanged.`); return; }
  try {
    const body = { name: account.name, scope: account.scope };
    if (account.description) body.description = account.description;
    if (account.metadata && Object.keys(account.metadata).length) body.metadata = account.metadata;
    const created = await api("POST", "/service-accounts", body);
    // The new token is shown before the old account goes: if revoking fails, it is not lost.
    showToken(created.token, `${created.name}, new account ${created.identity_id}`);
    try {
      await api("DELETE", `/service-accounts/${account.identity_id}`, reason ? { reason } : {});
    } catch (e) {
      say(`New account ${created.identity_id} created (its token is shown), but revoking the old account ${account.identity_id} failed: ${e.message}. Revoke it once the server answers.`, true);
      await reload();
      return;
    }
    say(`Rotated ${account.name}: new account ${created.identity_id}, old ${account.identity_id} revoked.`);
    await reload();
  } catch (e) { say(`Rotation failed, nothing changed: ${e.message}`, true); }
}

async function mint(account) {
  try {
    const res = await api("POST", `/service-accounts/${account.identity_id}/tokens`, {});
    showToken(res.token, `${account.name} (expires ${res.expires_at})`);
    await reload();
  } catch (e) { say(`Minting failed: ${e.message}`, true); }
}

// OAuth client secrets of one account: listed (never the secret), created (shown once in the
// token dialog), revoked.
let secretsOf = null;

async function loadSecrets() {
  const list = await api("GET", `/service-accounts/${secretsOf.identity_id}/client-secrets`);
  $("secrets-client").textContent = `${secretsOf.name}: client_id ${list.client_id}`;
  if (!list.data.length) { $("secret-list").replaceChildren(el("p", "No client secrets yet.")); return; }
  $("secret-list").replaceChildren(table(["Secret id", "Status", "Created", "Expires", ""], list.data, (secret) => ({
    attrs: { "data-secret": secret.secret_id },
    cells: [secret.secret_id, el("td", secret.status, { class: secret.status === "active" ? "" : "revoked" }),
      secret.created_at, secret.expires_at,
      actions(secret.status !== "active" ? [] : [{
        label: "Revoke", name: `Revoke secret ${secret.secret_id}`, danger: true,
        run: async () => {
          try {
            await api("DELETE", `/service-accounts/${secretsOf.identity_id}/client-secrets/${secret.secret_id}`, { reason: "revoked from the dashboard" });
            say(`Revoked client secret ${secret.secret_id}.`);
            await loadSecrets();
          } catch (e) { say(`Revoking the secret failed: ${e.message}`, true); }
        },
      }])],
  })));
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

function accountsTable(accounts) {
  return table(["ID", "Name", "Status", "Expires", "Time left", "Last used", "Actions"], accounts, (a) => {
    const left = remaining(a);
    const buttons = a.revoked_at ? [] : [
      { label: "Revoke", name: `Revoke ${a.name} (${a.identity_id})`, run: () => revoke(a), danger: true },
      { label: "Rotate", name: `Rotate ${a.name} (${a.identity_id})`, run: () => rotate(a) },
      { label: "Mint token", name: `Mint token ${a.name} (${a.identity_id})`, run: () => mint(a) },
      { label: "Client secrets", name: `Client secrets ${a.name} (${a.identity_id})`, run: () => openSecrets(a), change: false },
    ];
    return {
      attrs: { "data-id": a.identity_id, "data-status": a.status },
      cells: [String(a.identity_id), a.name, el("td", a.status, { class: a.status === "active" ? "" : a.status }),
        a.expires_at || "—", el("td", left.text, { class: left.cls }), a.last_used_at || "never", actions(buttons)],
    };
  });
}

/// Renders the accounts (all of them, revoked included; the checkbox decides what shows).
export function renderAccounts(all) {
  const shown = $("show-revoked").checked ? all : all.filter((a) => a.status !== "revoked");
  const container = $("scopes");
  container.replaceChildren();
  for (const scope of SCOPES) {
    const accounts = shown.filter((a) => a.scope === scope);
    if (!accounts.length) continue;
    const section = el("section", undefined, { "aria-label": `${scope} accounts` });
    section.append(el("h3", `${scope} (${accounts.length})`), accountsTable(accounts));
    container.append(section);
  }
  if (!shown.length) container.append(el("p", "No service accounts yet."));
  $("create-form").querySelector("button[type=submit]").disabled = !isAdmin();
}

async function create(ev) {
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
    await reload();
  } catch (e) { say(`Creating failed: ${e.message}`, true); }
}

const EXAMPLES = {
  sensor: '{"trigger_types": ["core.timer"]}',
  execution: '{"execution_id": 1, "action_ref": "core.http"}',
  webhook: '{"allowed_paths": ["/webhooks/github"]}',
  cli: "{}", admin: "{}",
};

export function wireAccounts() {
  $("create-form").addEventListener("submit", create);
  $("new-scope").addEventListener("change", () => { $("new-metadata").value = EXAMPLES[$("new-scope").value]; });
  $("secret-form").addEventListener("submit", createSecret);
  $("close-secrets").addEventListener("click", () => $("secrets-dialog").close());
}
