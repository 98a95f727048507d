// The admin console end to end in a real headless Chromium (Debian's `chromium`, driven by
// playwright-core), against the real app over real HTTP, with the real CLI enrolling and sending:
// sign in, create a token in the page, enroll with the command line the page showed, see the agent
// and its inventory, revoke it with a reason, watch the CLI's next send fail with agent_revoked, read
// the reason in the audit page. Then the refusals: no CSRF token, another origin, a read-only key.
// Every page is checked with axe-core (no serious or critical violation) at 1280 and 390 px wide,
// and screenshotted under test-results/console/.
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type Locator, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, type TestServer } from '../helpers/app.js';
import { dbKinds } from '../helpers/db.js';
import { runCli } from '../helpers/process.js';

const CHROMIUM = '/usr/bin/chromium';
const ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];
const SHOTS = fileURLToPath(new URL('../../test-results/console/', import.meta.url));
const FIXTURE = fileURLToPath(new URL('../fixtures/glpi/format/computer_1.json', import.meta.url));
const AXE = createRequire(import.meta.url).resolve('axe-core/axe.min.js');

let browser: Browser;
let axeSource: string;

beforeAll(async () => {
  // The test set-up installs the browser when it is missing and it may (root), as .ci/run does.
  if (!existsSync(CHROMIUM) && process.getuid?.() === 0) {
    execFileSync('apt-get', ['install', '-y', '--no-install-recommends', 'chromium'], { stdio: 'ignore', timeout: 300_000 });
  }
  axeSource = await readFile(AXE, 'utf8');
  await mkdir(SHOTS, { recursive: true });
  // launch() gives the browser a fresh user-data-dir of its own, removed on close.
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ARGS, headless: true });
}, 300_000);

afterAll(async () => {
  await browser?.close();
});

/** axe-core run inside the page (evaluated over the DevTools protocol: the page's CSP stays strict). */
async function accessibilityProblems(page: Page): Promise<string[]> {
  await page.evaluate(axeSource);
  const result = (await page.evaluate('axe.run()')) as {
    violations: { id: string; impact: string | null; nodes: { target: unknown }[] }[];
  };
  return result.violations
    .filter((v) => v.impact === 'serious' || v.impact === 'critical')
    .map((v) => `${v.id} (${v.impact}): ${JSON.stringify(v.nodes.slice(0, 3).map((n) => n.target))}`);
}

/** Both widths: no serious accessibility problem, no page-wide horizontal scrolling, a screenshot each. */
async function checkPage(page: Page, name: string): Promise<void> {
  for (const width of [1280, 390]) {
    await page.setViewportSize({ width, height: 900 });
    expect(await accessibilityProblems(page), `${name} at ${width}px`).toEqual([]);
    const overflow = await page.evaluate<number>('document.documentElement.scrollWidth - document.documentElement.clientWidth');
    expect(overflow, `${name} scrolls sideways at ${width}px`).toBeLessThanOrEqual(0);
    await page.screenshot({ path: join(SHOTS, `${name}-${width}.png`), fullPage: true });
  }
  await page.setViewportSize({ width: 1280, height: 900 });
}

/** The text of the first element a locator finds, once it is visible. */
async function textOf(locator: Locator): Promise<string> {
  await locator.first().waitFor();
  return (await locator.first().textContent()) ?? '';
}

async function signIn(page: Page, url: string, key: string): Promise<void> {
  await page.goto(`${url}/console`);
  expect(new URL(page.url()).pathname).toBe('/console/login');
  await page.getByLabel('Admin API key').fill(key);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.waitForURL(`${url}/console/fleet`);
}

async function cookieAndCsrf(page: Page): Promise<{ cookie: string; csrf: string }> {
  const cookies = await page.context().cookies();
  const session = cookies.find((c) => c.name === 'lk_console');
  expect(session?.httpOnly).toBe(true);
  expect(session?.sameSite).toBe('Strict');
  const csrf = await page.locator('input[name="csrf"]').first().getAttribute('value');
  return { cookie: `lk_console=${session!.value}`, csrf: csrf! };
}

describe.each(dbKinds)('the admin console in Chromium on %s', (kind) => {
  let server: TestServer;
  let dir: string;
  beforeAll(async () => {
    server = await startTestServer(kind);
    dir = await mkdtemp(join(tmpdir(), 'latchkey-console-'));
  }, 180_000);
  afterAll(async () => {
    await server?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const admin = async (method: string, path: string, body?: unknown) => {
    const res = await fetch(`${server.url}${path}`, {
      method,
      headers: { authorization: `Bearer ${server.adminToken}`, 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  };

  it('runs the whole job: token, enroll, watch, revoke, audit; and refuses forged POSTs', async () => {
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const page = await context.newPage();
    const shot = kind === 'pglite';

    // The sign-in page, then a session.
    await page.goto(`${server.url}/console/login`);
    const csp = (await page.request.get(`${server.url}/console/login`)).headers()['content-security-policy'];
    expect(csp).toContain("script-src 'self'");
    expect(csp).not.toContain('unsafe-inline');
    if (shot) await checkPage(page, 'login');
    await signIn(page, server.url, server.adminToken);
    expect(await textOf(page.locator('h1'))).toBe('Fleet');

    // A token made in the page, shown once with the exact enroll command line.
    await Promise.all([page.waitForURL(`${server.url}/console/tokens`), page.getByRole('link', { name: 'Tokens' }).click()]);
    await page.getByLabel('Labels (key=value a line)').fill('team=web');
    await page.getByLabel('Allowed names').fill('console-*');
    await Promise.all([page.waitForURL(`${server.url}/console/tokens`), page.getByRole('button', { name: 'Create token' }).click()]);
    const line = (await page.locator('#enroll-line').textContent())!;
    expect(line).toMatch(new RegExp(`^latchkey agent enroll --server ${server.url} --token lk1_\\S+ --state-dir \\S+$`));
    await page.getByRole('button', { name: 'Copy command' }).first().waitFor();
    if (shot) await checkPage(page, 'tokens-created');

    // Enroll with that command line (the state dir moved into the test's temp dir), then send.
    const args = line.split(' ').slice(1);
    args[args.indexOf('--state-dir') + 1] = dir;
    const enrolled = await runCli([...args, '--name', 'console-web-1', '--json']);
    expect(enrolled.stderr).toBe('');
    expect(enrolled.code).toBe(0);
    const agentId = (JSON.parse(enrolled.stdout) as { agentId: string }).agentId;
    const sent = await runCli(['agent', 'send', '--state-dir', dir, '--file', FIXTURE]);
    expect(sent.code, sent.stderr).toBe(0);

    // The token's use is listed; the agent is in the fleet, with its inventory.
    await page.goto(`${server.url}/console/tokens`);
    await page.locator('table').getByRole('link', { name: agentId }).first().waitFor();
    if (shot) await checkPage(page, 'tokens');
    await page.goto(`${server.url}/console/fleet?label=team%3Dweb`);
    const row = page.locator('tbody tr', { hasText: 'console-web-1' });
    expect(await textOf(row)).toContain('active');
    expect(await textOf(row)).toContain('direct');
    if (shot) await checkPage(page, 'fleet');
    await Promise.all([
      page.waitForURL(`${server.url}/console/agents/${agentId}`),
      row.getByRole('link', { name: 'console-web-1' }).click(),
    ]);
    expect(await textOf(page.locator('h1'))).toBe('Agent console-web-1');
    expect(await textOf(page.locator('dl.facts').nth(1))).toContain('Fedora 31 (Workstation Edition)');
    expect(await textOf(page.locator('dl.facts').nth(1))).toContain('glpixps');
    if (shot) await checkPage(page, 'agent');
    const raw = await page.request.get(
      new URL((await page.getByRole('link', { name: /Raw JSON/ }).getAttribute('href'))!, server.url).href,
    );
    expect(((await raw.json()) as { content: { hardware: { name: string } } }).content.hardware.name).toBe('glpixps');

    // Refusals, with this admin's real session: no CSRF token; another origin. Nothing changes.
    const { cookie, csrf } = await cookieAndCsrf(page);
    const post = (path: string, form: Record<string, string>, origin = server.url) =>
      fetch(`${server.url}${path}`, {
        method: 'POST',
        redirect: 'manual',
        headers: { cookie, origin, 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams(form).toString(),
      });
    const revokeForm = { reason: 'forged', confirm: 'console-web-1' };
    const noToken = await post(`/console/agents/${agentId}/revoke`, revokeForm);
    expect(noToken.status).toBe(403);
    expect(await noToken.text()).toContain('csrf_failed');
    const wrongToken = await post(`/console/agents/${agentId}/revoke`, { ...revokeForm, csrf: 'A'.repeat(43) });
    expect(wrongToken.status).toBe(403);
    const crossSite = await post(`/console/agents/${agentId}/revoke`, { ...revokeForm, csrf }, 'http://evil.example');
    expect(crossSite.status).toBe(403);
    expect(await crossSite.text()).toContain('csrf_failed');
    const agentsNow = await admin('GET', '/v1/admin/agents');
    expect((agentsNow.body.agents as { id: string; status: string }[]).find((a) => a.id === agentId)?.status).toBe('active');

    // Revoke in the page: a reason and the agent's name are required.
    await page.getByLabel('Reason (recorded in the audit log)').fill('laptop stolen from car');
    const revoke = page.getByRole('button', { name: 'Revoke agent console-web-1' });
    expect(await revoke.isDisabled()).toBe(true);
    await page.getByLabel('Type the agent name, console-web-1, to confirm').fill('console-web-1');
    await Promise.all([page.waitForURL(/done=revoked/), revoke.click()]);
    expect(await textOf(page.getByRole('status'))).toContain('Revoked.');
    expect(await textOf(page.locator('dl.facts').first())).toContain('revoked');

    // The CLI's next send is refused, signed: agent_revoked.
    const refused = await runCli(['agent', 'send', '--state-dir', dir, '--file', FIXTURE]);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toContain('agent_revoked');

    // The audit page shows the revocation with its reason, and the chain verifies.
    await page.goto(`${server.url}/console/audit?action=agent.`);
    expect(await textOf(page.locator('tbody tr', { hasText: 'agent.revoke' }))).toContain('laptop stolen from car');
    expect(await page.locator('[data-chain]').getAttribute('data-chain')).toBe('ok');
    if (shot) await checkPage(page, 'audit');
    await page.goto(`${server.url}/console/relays`);
    expect(await textOf(page.locator('main'))).toContain('Relays do not report their spool yet');
    if (shot) await checkPage(page, 'relays');

    // Sign-out ends the session on the server: the old cookie opens nothing.
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.waitForURL(`${server.url}/console/login`);
    const after = await fetch(`${server.url}/console/fleet`, { headers: { cookie }, redirect: 'manual' });
    expect(after.status).toBe(303);
    await context.close();
  }, 240_000);

  it('shows a read-only key no buttons and refuses its forged POSTs', async () => {
    const made = await admin('POST', '/v1/admin/admin-keys', { name: 'viewer', scopes: ['read'] });
    const token = await admin('POST', '/v1/admin/tokens', { ttlSeconds: 3600 });
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const page = await context.newPage();
    await signIn(page, server.url, made.body.credential as string);
    await page.goto(`${server.url}/console/tokens`);
    expect(await textOf(page.locator('main'))).toContain(token.body.id as string);
    expect(await page.locator('main form[method="post"]').count()).toBe(0);
    expect(await page.getByRole('button', { name: 'Create token' }).count()).toBe(0);

    const { cookie, csrf } = await cookieAndCsrf(page);
    const forged = await fetch(`${server.url}/console/tokens/${token.body.id as string}/revoke`, {
      method: 'POST',
      redirect: 'manual',
      headers: { cookie, origin: server.url, 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ csrf, reason: 'forged' }).toString(),
    });
    expect(forged.status).toBe(403);
    expect(await forged.text()).toContain('forbidden');
    const tokens = (await admin('GET', '/v1/admin/tokens')).body.tokens as { id: string; status: string }[];
    expect(tokens.find((t) => t.id === token.body.id)?.status).toBe('active');

    // Revoking the admin key ends its console session at once.
    expect((await admin('POST', `/v1/admin/admin-keys/${made.body.id as string}/revoke`)).status).toBe(200);
    const gone = await fetch(`${server.url}/console/tokens`, { headers: { cookie }, redirect: 'manual' });
    expect(gone.status).toBe(303);
    await context.close();
  }, 120_000);

  it('audits failed sign-ins and rate-limits them per source address', async () => {
    const login = await fetch(`${server.url}/console/login`);
    const pre = /lk_console_signin=([^;]+)/.exec(login.headers.get('set-cookie') ?? '')![1]!;
    const attempt = (key: string) =>
      fetch(`${server.url}/console/login`, {
        method: 'POST',
        redirect: 'manual',
        headers: { cookie: `lk_console_signin=${pre}`, origin: server.url, 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ csrf: pre, key }).toString(),
      });
    const statuses: number[] = [];
    for (let i = 0; i < 7; i++) statuses.push((await attempt(`lka.AAAAAAAAAAAA.${'B'.repeat(43)}`)).status);
    expect(statuses.slice(0, 5)).toEqual([401, 401, 401, 401, 401]);
    expect(statuses.slice(5)).toEqual([429, 429]);
    const audit = (await admin('GET', '/v1/admin/audit?limit=1000')).body.entries as { action: string; outcome: string; code: string }[];
    expect(audit.filter((e) => e.action === 'console.sign-in' && e.code === 'unauthorized')).toHaveLength(5);
    // Without the sign-in form's token (login CSRF), or from elsewhere: refused before any check.
    const noPre = await fetch(`${server.url}/console/login`, {
      method: 'POST',
      redirect: 'manual',
      headers: { origin: 'http://evil.example', 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ key: server.adminToken }).toString(),
    });
    expect(noPre.status).toBe(403);
  });
});
