// The dashboard in a real headless Chromium: sign in, create an account, see it listed,
// revoke it, see it revoked. Usage:
//   node dashboard.mjs http://127.0.0.1:8080 "$ADMIN_TOKEN" [screenshot.png]
// Exits non-zero on the first thing that is not as expected.
import { chromium } from "playwright-core";
import assert from "node:assert/strict";

const [url, token, screenshot] = process.argv.slice(2);
if (!url || !token) {
  console.error("usage: node dashboard.mjs URL ADMIN_TOKEN [screenshot.png]");
  process.exit(2);
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
  ],
});
const errors = [];
try {
  const context = await browser.newContext({ viewport: { width: 1200, height: 800 } });
  await context.grantPermissions(["clipboard-read", "clipboard-write"], { origin: url });
  const page = await context.newPage();
  page.on("pageerror", (e) => errors.push(e.message));
  page.on("console", (m) => { if (m.type() === "error") errors.push(m.text()); });

  await page.goto(`${url}/ui`);
  // Sign in with a token.
  await page.getByLabel("Admin token or a user's cli token").fill(token);
  await page.getByRole("button", { name: "Use token" }).click();
  await page.getByText(/Signed in as/).waitFor();

  // Create an account; its token is shown once.
  const name = `sensor:browser-${Date.now()}`;
  await page.getByLabel("Name", { exact: true }).fill(name);
  await page.getByLabel("Scope", { exact: true }).selectOption("sensor");
  await page.getByLabel("Lifetime in hours").fill("48");
  await page.getByLabel("Metadata (JSON)").fill('{"trigger_types": ["core.timer"]}');
  await page.getByRole("button", { name: "Create" }).click();
  const dialog = page.getByRole("dialog", { name: /New token/ });
  await dialog.waitFor();
  const newToken = await page.locator("#new-token").inputValue();
  assert.equal(newToken.split(".").length, 3, "a JWT is shown");
  await page.getByRole("button", { name: "Copy" }).click();
  await page.getByRole("button", { name: "Done" }).click();
  assert.equal(await page.locator("#new-token").inputValue(), "", "the token is gone once closed");

  // It is listed under sensor, active, with its time left.
  const row = page.locator("tr", { hasText: name });
  await row.waitFor();
  assert.match(await row.textContent(), /active/);
  assert.match(await row.textContent(), /in 4[78]\.\d h/);
  if (screenshot) await page.screenshot({ path: screenshot, fullPage: true });

  // OAuth client secrets: create one (shown once), see it listed, revoke it.
  await row.getByRole("button", { name: /^Client secrets/ }).click();
  const secrets = page.getByRole("dialog", { name: "OAuth client secrets" });
  await secrets.waitFor();
  await secrets.getByText("No client secrets yet.").waitFor();
  await secrets.getByRole("button", { name: "New secret" }).click();
  await page.getByRole("dialog", { name: /New token: client secret of sa-/ }).waitFor();
  const clientSecret = await page.locator("#new-token").inputValue();
  assert.match(clientSecret, /^tokend_cs_/);
  const accountId = await row.getAttribute("data-id");
  const granted = await fetch(`${url}/oauth2/token`, {
    method: "POST",
    headers: { Authorization: `Basic ${Buffer.from(`sa-${accountId}:${clientSecret}`).toString("base64")}`, "Content-Type": "application/x-www-form-urlencoded" },
    body: "grant_type=client_credentials",
  });
  assert.equal(granted.status, 200, "the secret shown gets a token");
  await page.getByRole("button", { name: "Done" }).click();
  await row.getByRole("button", { name: /^Client secrets/ }).click();
  const secretRow = secrets.locator("tr[data-secret]");
  await secretRow.waitFor();
  assert.match(await secretRow.textContent(), /active/);
  await secretRow.getByRole("button", { name: /^Revoke secret/ }).click();
  await secrets.locator("tr[data-secret]", { hasText: "revoked" }).waitFor();
  await secrets.getByRole("button", { name: "Close" }).click();

  // Revoke it with a reason, and see it revoked.
  await row.getByRole("button", { name: /^Revoke/ }).click();
  await page.getByLabel("Reason").fill("browser test");
  await page.getByRole("dialog", { name: "Revoke" }).getByRole("button", { name: "Revoke" }).click();
  await page.getByText(/Revoked sensor:browser-/).waitFor();
  // Revoked accounts are hidden by default...
  await page.locator("tr", { hasText: name }).waitFor({ state: "detached" });
  await page.getByLabel("show revoked").check();
  const revoked = page.locator("tr", { hasText: name });
  await revoked.waitFor();
  assert.match(await revoked.textContent(), /revoked/);

  // The token shown once really was revoked.
  const res = await fetch(`${url}/auth/whoami`, { headers: { Authorization: `Bearer ${newToken}` } });
  assert.equal(res.status, 401);
  assert.equal((await res.json()).error.code, "token_revoked");

  // Users: disable one from the dashboard; their session is refused at once.
  const auth = { Authorization: `Bearer ${token}`, "Content-Type": "application/json" };
  const login = `browser${Date.now()}`;
  const added = await fetch(`${url}/users`, { method: "POST", headers: auth, body: JSON.stringify({ login, password: "correct horse battery", role: "viewer" }) });
  assert.equal(added.status, 201);
  const session = await (await fetch(`${url}/auth/login`, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ login, password: "correct horse battery" }) })).json();
  await page.reload();
  const userRow = page.locator("tr", { hasText: login });
  await userRow.waitFor();
  assert.match(await userRow.textContent(), /viewer.*enabled/);
  page.once("dialog", (d) => d.accept());
  await userRow.getByRole("button", { name: `Disable user ${login}` }).click();
  await page.getByText(new RegExp(`Disable: ${login} \\(1 token`)).waitFor();
  // The table reloads after the message: wait for the refreshed row rather than race it.
  await page.locator("tr", { hasText: login }).filter({ hasText: "disabled" }).waitFor({ timeout: 5000 });
  const refused = await fetch(`${url}/auth/whoami`, { headers: { Authorization: `Bearer ${session.token}` } });
  assert.equal(refused.status, 401, "the disabled user's session is refused");

  // Trusted issuers: add one from its JSON document, see it listed, remove it.
  const doc = { issuer: `https://k8s-${Date.now()}.example`, jwks_uri: "https://k8s.example/openid/v1/jwks", audiences: ["tokend"],
    rules: [{ match: { "kubernetes.io.namespace": "sensors" }, scope: "sensor", name: "sensor:{kubernetes.io.serviceaccount.name}", metadata: { trigger_types: ["core.timer"] } }] };
  await page.getByLabel("New issuer (JSON)").fill(JSON.stringify(doc));
  await page.getByRole("button", { name: "Add issuer" }).click();
  const issuerRow = page.locator("tr[data-issuer]", { hasText: doc.issuer });
  await issuerRow.waitFor();
  page.once("dialog", (d) => d.accept());
  await issuerRow.getByRole("button", { name: `Remove issuer ${doc.issuer}` }).click();
  await page.locator("tr[data-issuer]", { hasText: doc.issuer }).waitFor({ state: "detached" });

  assert.deepEqual(errors, [], "no errors in the page");
  console.log("dashboard: ok");
} catch (e) {
  const page = browser.contexts()[0]?.pages()[0];
  if (page) {
    console.error("status:", await page.locator("#status").textContent().catch(() => "?"));
    await page.screenshot({ path: "failure.png", fullPage: true }).catch(() => {});
  }
  console.error("page errors:", errors);
  throw e;
} finally {
  await browser.close();
}
