// The dashboard in a real headless Chromium, against a real tokend seeded by
// scripts/browser-test.sh: every view renders the seeded data, rotate and revoke (each
// behind a confirmation; cancelling changes nothing) take effect as the API sees it, a
// viewer gets a read-only dashboard. Usage:
//   node dashboard.mjs http://127.0.0.1:8080 "$ADMIN_TOKEN" [screenshot.png]
// Exits non-zero on the first thing that is not as expected.
import { chromium } from "playwright-core";
import assert from "node:assert/strict";

const [url, token, screenshot] = process.argv.slice(2);
if (!url || !token) {
  console.error("usage: node dashboard.mjs URL ADMIN_TOKEN [screenshot.png]");
  process.exit(2);
}

/// The API as an operator's script sees it: status and JSON body.
async function call(method, path, body, bearer = token) {
  const headers = { Authorization: `Bearer ${bearer}` };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const res = await fetch(`${url}${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  return { status: res.status, body: await res.json().catch(() => ({})) };
}
const account = async (id) => (await call("GET", `/service-accounts/${id}`)).body;
const whoami = (bearer) => call("GET", "/auth/whoami", undefined, bearer);
const byName = async (name) => (await call("GET", `/service-accounts?status=all&name=${encodeURIComponent(name)}`)).body.data;

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
  ],
});
const errors = [];
let page;
try {
  const context = await browser.newContext({ viewport: { width: 1200, height: 900 } });
  await context.grantPermissions(["clipboard-read", "clipboard-write"], { origin: url });
  page = await context.newPage();
  page.on("pageerror", (e) => errors.push(e.message));
  page.on("console", (m) => { if (m.type() === "error") errors.push(m.text()); });
  const loaded = (view) => page.locator(`#main[data-loaded="${view}"]`).waitFor();
  const go = async (view, label) => {
    await page.evaluate(() => { delete document.getElementById("main").dataset.loaded; });
    await page.getByRole("navigation", { name: "Views" }).getByRole("link", { name: label, exact: true }).click();
    await loaded(view);
  };
  const confirmDialog = page.getByRole("dialog", { name: /\?$/ });

  await page.goto(`${url}/ui`);
  // Sign in with a token; the overview comes first.
  await page.getByLabel("Admin token or a user's cli token").fill(token);
  await page.getByRole("button", { name: "Use token" }).click();
  await page.getByText(/Signed in as tokend-admin \(admin\)/).waitFor();
  await loaded("overview");
  assert.equal(await page.locator("#read-only").isVisible(), false, "an admin is not told it is read-only");

  // ---- Overview: counts per scope and status ----
  const counts = async (scope) => (await page.locator(`#counts tr[data-scope="${scope}"] td`).allTextContents()).slice(0, 5);
  // scope, active, expiring within 6 h, expired, revoked (sensor:leaked lost its only token,
  // sensor:retired was revoked: both are revoked, neither expired).
  assert.deepEqual(await counts("sensor"), ["sensor", "4", "0", "0", "2"]);
  assert.deepEqual(await counts("execution"), ["execution", "2", "2", "0", "0"]);
  assert.deepEqual(await counts("cli"), ["cli", "2", "0", "0", "0"]);
  assert.deepEqual(await counts("webhook"), ["webhook", "1", "0", "0", "0"]);
  // Inside the warning window: the two executions, soonest first.
  const urgent = await page.locator("#urgent tbody tr td:first-child").allTextContents();
  assert.deepEqual(urgent, ["exec:4712", "exec:4711"]);

  // The chart: uPlot drew a band in each scope's colour that expires within 7 days (not
  // webhook: 90 days), the warning window is shaded, and its numbers agree.
  const drawn = async () => page.evaluate(async () => {
    const { COLOURS } = await import("/ui/chart.js");
    const canvas = document.querySelector("#expiry-chart canvas");
    if (!canvas) return null;
    const { data } = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height);
    const out = {};
    for (const [scope, hex] of Object.entries(COLOURS)) {
      const [r, g, b] = [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16));
      let n = 0;
      for (let i = 0; i < data.length; i += 4) if (data[i] === r && data[i + 1] === g && data[i + 2] === b && data[i + 3] === 255) n++;
      out[scope] = n;
    }
    return out;
  });
  await page.waitForFunction(() => document.querySelector("#expiry-chart canvas"));
  const pixels = await drawn();
  for (const scope of ["sensor", "execution", "cli", "admin"]) assert.ok(pixels[scope] > 50, `a ${scope} band is drawn: ${JSON.stringify(pixels)}`);
  assert.equal(pixels.webhook, 0, "nothing of webhook expires within 7 days");
  const legend = await page.locator("#expiry-chart .u-legend .u-label").allTextContents();
  assert.deepEqual(legend.slice(1), ["sensor", "execution", "cli", "admin"]);
  if (screenshot) await page.screenshot({ path: screenshot, fullPage: true });
  await page.locator("#expiry-numbers summary").click();
  const first = page.locator('#expiry-numbers tr[data-bucket="0"]');
  assert.deepEqual((await first.locator("td").allTextContents()).slice(2), ["0", "2", "0", "0", "yes"], "2 executions in the first 6 h");
  assert.match(await page.locator("#chart-title").textContent(), /next 7 days/);
  await page.locator("#expiry-numbers summary").click();

  // A wider warning window takes in the day-long tokens too.
  await page.getByLabel("Warn within").fill("30");
  await page.getByLabel("Warn within").dispatchEvent("change");
  await page.locator("#urgent tr", { hasText: "sensor:github.poll" }).waitFor();
  assert.deepEqual((await counts("sensor")).slice(1, 3), ["4", "2"], "core.disk (24 h) and github.poll (30 h)");
  await page.getByLabel("Warn within").fill("6");
  await page.getByLabel("Warn within").dispatchEvent("change");
  await page.locator("#urgent tr", { hasText: "sensor:github.poll" }).waitFor({ state: "detached" });

  // ---- Accounts: statuses are right (revoked is not expired) ----
  await go("accounts", "Accounts");
  const rowOf = (name) => page.locator("#scopes tr", { hasText: name });
  await rowOf("sensor:core.timer").waitFor();
  assert.equal(await rowOf("sensor:leaked").count(), 0, "revoked accounts are hidden by default");
  await page.getByLabel("show revoked").check();
  const leaked = rowOf("sensor:leaked");
  await leaked.waitFor();
  assert.equal(await leaked.getAttribute("data-status"), "revoked");
  assert.match(await leaked.textContent(), /revoked \(every token\)/);
  assert.doesNotMatch(await leaked.textContent(), /expired|no live token/);
  const [leakedApi] = await byName("sensor:leaked");
  assert.equal(leakedApi.status, "revoked", "the API agrees");
  assert.match(await rowOf("sensor:retired").textContent(), /revoked/);
  await page.getByLabel("show revoked").uncheck();

  // Create an account; its token is shown once.
  const name = `sensor:browser-${Date.now()}`;
  await page.getByLabel("Name", { exact: true }).fill(name);
  await page.getByLabel("Scope", { exact: true }).selectOption("sensor");
  await page.getByLabel("Lifetime in hours").fill("48");
  await page.getByLabel("Metadata (JSON)").fill('{"trigger_types": ["core.timer"]}');
  await page.getByRole("button", { name: "Create" }).click();
  await page.getByRole("dialog", { name: /New token/ }).waitFor();
  const firstToken = await page.locator("#new-token").inputValue();
  assert.equal(firstToken.split(".").length, 3, "a JWT is shown");
  await page.getByRole("button", { name: "Copy" }).click();
  await page.getByRole("button", { name: "Done" }).click();
  assert.equal(await page.locator("#new-token").inputValue(), "", "the token is gone once closed");
  const row = rowOf(name);
  await row.waitFor();
  assert.match(await row.textContent(), /active/);
  assert.match(await row.textContent(), /in 4[78]\.\d h/);
  const oldId = Number(await row.getAttribute("data-id"));

  // OAuth client secrets: create one (shown once), see it listed, revoke it.
  await row.getByRole("button", { name: /^Client secrets/ }).click();
  const secrets = page.getByRole("dialog", { name: "OAuth client secrets" });
  await secrets.getByText("No client secrets yet.").waitFor();
  await secrets.getByRole("button", { name: "New secret" }).click();
  await page.getByRole("dialog", { name: /New token: client secret of sa-/ }).waitFor();
  const clientSecret = await page.locator("#new-token").inputValue();
  assert.match(clientSecret, /^tokend_cs_/);
  const granted = await fetch(`${url}/oauth2/token`, {
    method: "POST",
    headers: { Authorization: `Basic ${Buffer.from(`sa-${oldId}:${clientSecret}`).toString("base64")}`, "Content-Type": "application/x-www-form-urlencoded" },
    body: "grant_type=client_credentials",
  });
  assert.equal(granted.status, 200, "the secret shown gets a token");
  await page.getByRole("button", { name: "Done" }).click();
  await row.getByRole("button", { name: /^Client secrets/ }).click();
  const secretRow = secrets.locator("tr[data-secret]");
  await secretRow.waitFor();
  await secretRow.getByRole("button", { name: /^Revoke secret/ }).click();
  await secrets.locator("tr[data-secret]", { hasText: "revoked" }).waitFor();
  await secrets.getByRole("button", { name: "Close" }).click();

  // More live tokens of it (and audit events for the paging below): rotation revokes them all.
  for (let i = 0; i < 40; i++) assert.equal((await call("POST", `/service-accounts/${oldId}/tokens`, {})).status, 201);

  // ---- Rotate: cancelled changes nothing; confirmed, the old token stops, the new works ----
  await row.getByRole("button", { name: /^Rotate/ }).click();
  await confirmDialog.waitFor();
  assert.match(await confirmDialog.textContent(), new RegExp(`Rotate ${name}\\?`));
  await confirmDialog.getByRole("button", { name: "Cancel" }).click();
  await page.getByText(`Nothing rotated: ${name} is unchanged.`).waitFor();
  assert.equal((await account(oldId)).status, "active", "cancel: still active");
  assert.equal((await whoami(firstToken)).status, 200, "cancel: the token still works");
  assert.equal((await byName(name)).length, 1, "cancel: no new account");

  await row.getByRole("button", { name: /^Rotate/ }).click();
  await confirmDialog.getByRole("button", { name: "Rotate" }).click();
  // The new token is shown before the old account is revoked (so a failed revoke loses nothing).
  await page.getByRole("dialog", { name: new RegExp(`New token: ${name}, new account \\d+`) }).waitFor();
  const rotatedToken = await page.locator("#new-token").inputValue();
  await page.getByText(new RegExp(`Rotated ${name}: new account \\d+, old ${oldId} revoked\\.`)).waitFor();
  await page.getByRole("button", { name: "Done" }).click();
  const old = await whoami(firstToken);
  assert.equal(old.status, 401);
  assert.equal(old.body.error.code, "token_revoked", "the old token is revoked");
  const fresh = await whoami(rotatedToken);
  assert.equal(fresh.status, 200, "the new token works");
  assert.equal(fresh.body.name, name);
  const newId = fresh.body.identity_id;
  assert.notEqual(newId, oldId);
  const oldAccount = await account(oldId);
  assert.equal(oldAccount.status, "revoked");
  assert.equal(oldAccount.revocation_reason, "Token rotation");
  assert.ok(oldAccount.tokens.every((t) => t.revoked_at), "every token of the old account is revoked");
  const newRow = page.locator(`#scopes tr[data-id="${newId}"]`);
  await newRow.waitFor();
  assert.equal(await page.locator(`#scopes tr[data-id="${oldId}"]`).count(), 0, "the old account left the default list");

  // ---- Revoke: cancelled changes nothing; confirmed, the API and the list say revoked ----
  await newRow.getByRole("button", { name: /^Revoke/ }).click();
  await confirmDialog.getByRole("button", { name: "Cancel" }).click();
  await page.getByText(`Nothing revoked: ${name} is unchanged.`).waitFor();
  assert.equal((await account(newId)).status, "active", "cancel: still active");
  assert.equal((await whoami(rotatedToken)).status, 200, "cancel: the token still works");

  await newRow.getByRole("button", { name: /^Revoke/ }).click();
  await confirmDialog.getByLabel(/Reason/).fill("browser test");
  await page.keyboard.press("Escape");
  await page.getByText(`Nothing revoked: ${name} is unchanged.`).waitFor();
  assert.equal((await account(newId)).status, "active", "escape: still active");
  await newRow.getByRole("button", { name: /^Revoke/ }).click();
  await confirmDialog.getByLabel(/Reason/).fill("browser test");
  await confirmDialog.getByRole("button", { name: "Revoke" }).click();
  await page.getByText(new RegExp(`Revoked ${name} \\(1 live token`)).waitFor();
  const revokedApi = await account(newId);
  assert.equal(revokedApi.status, "revoked");
  assert.equal(revokedApi.revocation_reason, "browser test");
  const refused = await whoami(rotatedToken);
  assert.equal(refused.body.error.code, "token_revoked");
  // The refused use is audited by the usage flush, every 5 s. Wait for it: an event arriving
  // while the audit pages are compared below would make "Newer" land on a newer first row.
  const usedAfter = async () =>
    (await call("GET", `/audit?action=token.used_after_revocation&identity_id=${newId}`)).body.data ?? [];
  for (let i = 0; i < 150 && (await usedAfter()).length === 0; i++) await new Promise((r) => setTimeout(r, 100));
  assert.equal((await usedAfter()).length, 1, "the refused use of the revoked token is audited");
  await page.locator(`#scopes tr[data-id="${newId}"]`).waitFor({ state: "detached" });
  await page.getByLabel("show revoked").check();
  const revokedRow = page.locator(`#scopes tr[data-id="${newId}"]`);
  await revokedRow.waitFor();
  assert.equal(await revokedRow.locator("td").nth(2).textContent(), "revoked");
  assert.equal(await revokedRow.locator("td").nth(4).textContent(), "revoked", "revoked, not expired");
  assert.equal(await revokedRow.getByRole("button").count(), 0, "nothing to do with a revoked account");
  await page.getByLabel("show revoked").uncheck();

  // ---- Audit: newest first, the revocation on top (after the refused uses it caused), paged ----
  await go("audit", "Audit");
  const auditRows = page.locator("#audit-list tbody tr");
  await auditRows.first().waitFor();
  const newest = await auditRows.evaluateAll((rows) =>
    rows.slice(0, 5).map((r) => [...r.querySelectorAll("td")].map((td) => td.textContent)));
  const top = newest.find((cells) => cells[1] !== "token.used_after_revocation");
  assert.equal(top[1], "account.revoked");
  assert.equal(top[3], `${name} (${newId})`);
  assert.equal(top[5], "browser test");
  const ids = async () => (await auditRows.evaluateAll((rows) => rows.map((r) => Number(r.dataset.event))));
  const page1 = await ids();
  assert.equal(page1.length, 50, "a page of 50");
  assert.deepEqual(page1, [...page1].sort((a, b) => b - a), "newest first");
  await page.getByRole("button", { name: "Older" }).click();
  await page.waitForFunction((last) => Number(document.querySelector("#audit-list tbody tr")?.dataset.event) < last, page1.at(-1));
  const page2 = await ids();
  assert.ok(page2[0] < page1.at(-1), "the next page is older");
  await page.getByRole("button", { name: "Newer" }).click();
  await page.waitForFunction((first) => Number(document.querySelector("#audit-list tbody tr")?.dataset.event) === first, page1[0]);
  const everything = (await call("GET", "/audit?limit=1000")).body.data.map((e) => e.action);
  for (const a of ["key.rotated", "user.added", "revocation.bulk"]) assert.ok(everything.includes(a), `${a} is audited`);

  // ---- Keys: kid, algorithm, state ----
  await go("keys", "Keys");
  const keys = (await call("GET", "/keys")).body.data;
  const keyRows = page.locator("#key-list tbody tr");
  assert.equal(await keyRows.count(), keys.length);
  const states = await page.locator("#key-list tbody tr").evaluateAll((rows) => rows.map((r) => r.dataset.state).sort());
  assert.deepEqual(states, ["active", "next", "retiring"], "after one rotation");
  for (const k of keys) {
    const cells = await page.locator(`#key-list tr[data-kid="${k.kid}"] td`).allTextContents();
    assert.deepEqual(cells.slice(0, 4), [k.kid, "EdDSA", k.status, k.created_at]);
  }

  // ---- Users: login, role, status; disable one (confirmed) and their session is refused ----
  await go("users", "Users");
  const userRow = (login) => page.locator("#user-list tr", { hasText: login });
  assert.deepEqual((await userRow("carol").locator("td").allTextContents()).slice(1, 4), ["carol", "admin", "enabled"]);
  assert.deepEqual((await userRow("dave").locator("td").allTextContents()).slice(1, 4), ["dave", "viewer", "enabled"]);
  const login = `browser${Date.now()}`;
  const added = await call("POST", "/users", { login, password: "correct horse battery", role: "viewer" });
  assert.equal(added.status, 201);
  const session = await (await fetch(`${url}/auth/login`, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ login, password: "correct horse battery" }) })).json();
  await page.getByRole("button", { name: "Refresh" }).click();
  await userRow(login).waitFor();
  await userRow(login).getByRole("button", { name: `Disable user ${login}` }).click();
  await confirmDialog.getByRole("button", { name: "Cancel" }).click();
  assert.equal((await whoami(session.token)).status, 200, "cancel: the session still works");
  await userRow(login).getByRole("button", { name: `Disable user ${login}` }).click();
  await confirmDialog.getByRole("button", { name: "Disable" }).click();
  await page.getByText(new RegExp(`Disable: ${login} \\(1 token`)).waitFor();
  await page.locator("#user-list tr", { hasText: login }).filter({ hasText: "disabled" }).waitFor();
  assert.equal((await whoami(session.token)).status, 401, "the disabled user's session is refused");

  // ---- Trusted issuers: add one from its JSON document, remove it (confirmed) ----
  await go("issuers", "Trusted issuers");
  const doc = { issuer: `https://k8s-${Date.now()}.example`, jwks_uri: "https://k8s.example/openid/v1/jwks", audiences: ["tokend"],
    rules: [{ match: { "kubernetes.io.namespace": "sensors" }, scope: "sensor", name: "sensor:{kubernetes.io.serviceaccount.name}", metadata: { trigger_types: ["core.timer"] } }] };
  await page.getByLabel("New issuer (JSON)").fill(JSON.stringify(doc));
  await page.getByRole("button", { name: "Add issuer" }).click();
  const issuerRow = page.locator("tr[data-issuer]", { hasText: doc.issuer });
  await issuerRow.waitFor();
  await issuerRow.getByRole("button", { name: `Remove issuer ${doc.issuer}` }).click();
  await confirmDialog.getByRole("button", { name: "Remove" }).click();
  await page.locator("tr[data-issuer]", { hasText: doc.issuer }).waitFor({ state: "detached" });

  // ---- A viewer reads everything and can change nothing ----
  const viewer = await browser.newContext({ viewport: { width: 1200, height: 900 } });
  const vpage = await viewer.newPage();
  vpage.on("pageerror", (e) => errors.push(e.message));
  await vpage.goto(`${url}/ui#accounts`);
  await vpage.getByLabel("Login", { exact: true }).fill("dave");
  await vpage.getByLabel("Password").fill("correct horse battery");
  await vpage.getByRole("button", { name: "Sign in" }).click();
  await vpage.getByText(/Signed in as dave \(viewer, read-only\)/).waitFor();
  await vpage.locator('#main[data-loaded="accounts"]').waitFor();
  await vpage.getByText(/Read-only: you are signed in as a viewer/).waitFor();
  const timer = vpage.locator("#scopes tr", { hasText: "sensor:core.timer" });
  for (const label of ["Rotate", "Revoke", "Mint token"]) {
    assert.equal(await timer.getByRole("button", { name: new RegExp(`^${label}`) }).isDisabled(), true, `${label} is disabled`);
  }
  assert.equal(await vpage.getByRole("button", { name: "Create" }).isDisabled(), true);
  // Should a change get through anyway, tokend refuses it and the dashboard says why.
  const why = await vpage.evaluate(async (id) => {
    const { api } = await import("/ui/common.js");
    try { await api("DELETE", `/service-accounts/${id}`, {}); return "allowed"; } catch (e) { return `${e.status} ${e.message}`; }
  }, Number(await timer.getAttribute("data-id")));
  assert.match(why, /^403 not allowed for this sign-in \(viewer\)/);
  assert.equal((await byName("sensor:core.timer"))[0].status, "active", "the viewer changed nothing");
  await viewer.close();

  assert.deepEqual(errors, [], "no errors in the page");
  console.log("dashboard: ok");
} catch (e) {
  if (page) {
    console.error("status:", await page.locator("#status").textContent().catch(() => "?"));
    await page.screenshot({ path: "failure.png", fullPage: true }).catch(() => {});
  }
  console.error("page errors:", errors);
  throw e;
} finally {
  await browser.close();
}
