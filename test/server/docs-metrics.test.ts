// /docs and /metrics exposure (issue 10, item 20), with the real `latchkey serve` process and the real
// wrangler bundler: Swagger UI comes from this package under a strict CSP, never from a CDN; /metrics
// takes an optional bearer token and can move to another address.
import { execFile } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { runCli, startServe, type ServeProcess } from '../helpers/process.js';

const require = createRequire(import.meta.url);
const swaggerFile = (name: string) => readFile(require.resolve(`swagger-ui-dist/${name}`), 'utf8');

// Real server processes: slow on a loaded 2-core machine.
const SLOW = 120_000;

let dir: string;
let server: ServeProcess | undefined;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'latchkey-docs-'));
});
afterEach(async () => {
  await server?.stop();
  server = undefined;
  await rm(dir, { recursive: true, force: true });
});

// One server with --metrics-token for /docs and the token's tests (a PGlite `serve` start costs
// seconds of CPU), started by whichever of them runs first.
const METRICS_TOKEN = 'metrics-secret-3f9a1c';
let sharedDir: string;
let shared: Promise<ServeProcess> | undefined;
const withMetricsToken = () => (shared ??= startServe(['--data-dir', join(sharedDir, 'data'), '--metrics-token', METRICS_TOKEN]));
beforeAll(async () => {
  sharedDir = await mkdtemp(join(tmpdir(), 'latchkey-docs-shared-'));
});
afterAll(async () => {
  await (await shared?.catch(() => undefined))?.stop();
  await rm(sharedDir, { recursive: true, force: true });
});

describe('GET /docs (issue 10 item 20)', () => {
  it(
    'serves Swagger UI from the package itself, under a CSP with no inline script and no other origin',
    async () => {
      const server = await withMetricsToken();
      const page = await fetch(`${server.url}/docs`);
      expect(page.status).toBe(200);
      const html = await page.text();
      const csp = page.headers.get('content-security-policy') ?? '';
      expect(csp).toContain("default-src 'none'");
      expect(csp).toContain("script-src 'self'");
      expect(csp).toContain("frame-ancestors 'none'");
      expect(csp).not.toMatch(/unsafe-inline|unsafe-eval|https?:|\*/);
      expect(page.headers.get('x-content-type-options')).toBe('nosniff');

      // No external origin anywhere on the page, and every script is a same-origin file.
      expect(html).not.toMatch(/https?:\/\/|\/\/cdn|jsdelivr|unpkg/);
      const scripts = [...html.matchAll(/<script([^>]*)>([\s\S]*?)<\/script>/g)];
      expect(scripts.length).toBeGreaterThan(0);
      for (const [, attrs, body] of scripts) {
        expect(attrs).toMatch(/ src="\/docs\/[a-z0-9.-]+\.js"/);
        expect(body!.trim()).toBe('');
      }
      expect(html).not.toMatch(/<style|\sstyle=|\son[a-z]+=/i);

      // The referenced files are swagger-ui-dist's, byte for byte, with the same CSP.
      const bundle = await fetch(`${server.url}/docs/swagger-ui-bundle.js`);
      expect(bundle.status).toBe(200);
      expect(bundle.headers.get('content-type')).toMatch(/^text\/javascript/);
      expect(bundle.headers.get('content-security-policy')).toBe(csp);
      expect(await bundle.text()).toBe(await swaggerFile('swagger-ui-bundle.js'));
      const css = await fetch(`${server.url}/docs/swagger-ui.css`);
      expect(css.headers.get('content-type')).toMatch(/^text\/css/);
      expect(await css.text()).toBe(await swaggerFile('swagger-ui.css'));
      const init = await (await fetch(`${server.url}/docs/init.js`)).text();
      expect(init).toContain("url: '/openapi.json'");
      expect((await fetch(`${server.url}/openapi.json`)).status).toBe(200);
    },
    SLOW,
  );

  it('the Worker bundle carries the same files as text modules, and no CDN', async () => {
    const out = join(dir, 'worker');
    const wrangler = join(import.meta.dirname, '../../node_modules/.bin/wrangler');
    await promisify(execFile)(wrangler, ['deploy', '--dry-run', '--outdir', out], {
      cwd: join(import.meta.dirname, '../..'),
      env: { PATH: process.env.PATH, HOME: process.env.HOME, WRANGLER_SEND_METRICS: 'false', CI: '1' },
      timeout: 120_000,
    });
    const files = await readdir(out);
    const text = async (suffix: string) =>
      readFile(
        join(
          out,
          files.find((f) => f.endsWith(suffix))!,
        ),
        'utf8',
      );
    expect(await text('-swagger-ui-bundle.js')).toBe(await swaggerFile('swagger-ui-bundle.js'));
    expect(await text('-swagger-ui.css')).toBe(await swaggerFile('swagger-ui.css'));
    const main = await text('worker.js');
    expect(main).toMatch(/import \w+ from "\.\/[0-9a-f]+-swagger-ui-bundle\.js"/);
    expect(main).not.toMatch(/jsdelivr|unpkg/);
  }, 180_000);
});

describe('GET /metrics (issue 10 item 20)', () => {
  it(
    '--metrics-token: refused without the bearer or with a wrong one, served with it; never echoed',
    async () => {
      const token = METRICS_TOKEN;
      const server = await withMetricsToken();
      const none = await fetch(`${server.url}/metrics`);
      expect(none.status).toBe(401);
      expect(((await none.json()) as { error: { code: string } }).error.code).toBe('unauthorized');
      for (const header of [`Bearer ${token}x`, `Bearer ${token.slice(0, -1)}`, token, 'Bearer ']) {
        expect((await fetch(`${server.url}/metrics`, { headers: { authorization: header } })).status).toBe(401);
      }
      const ok = await fetch(`${server.url}/metrics`, { headers: { authorization: `Bearer ${token}` } });
      expect(ok.status).toBe(200);
      expect(await ok.text()).toContain('latchkey_http_requests_total');
      const { stdout, stderr } = server.output();
      expect(stdout + stderr).not.toContain(token);
    },
    SLOW,
  );

  it(
    'LATCHKEY_METRICS_LISTEN moves /metrics off the main port; LATCHKEY_METRICS_TOKEN guards it there',
    async () => {
      server = await startServe(['--data-dir', join(dir, 'data')], {
        LATCHKEY_METRICS_LISTEN: '127.0.0.1:0',
        LATCHKEY_METRICS_TOKEN: 't0ken',
      });
      const metricsUrl = /metrics on (\S+)/.exec(server.output().stdout)?.[1];
      expect(metricsUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/metrics$/);
      expect(metricsUrl).not.toBe(`${server.url}/metrics`);
      expect((await fetch(`${server.url}/metrics`, { headers: { authorization: 'Bearer t0ken' } })).status).toBe(404);
      expect((await fetch(metricsUrl!)).status).toBe(401);
      const ok = await fetch(metricsUrl!, { headers: { authorization: 'Bearer t0ken' } });
      expect(ok.status).toBe(200);
      expect(await ok.text()).toContain('latchkey_');
      // Only /metrics there: not the API.
      expect((await fetch(metricsUrl!.replace(/\/metrics$/, '/healthz'))).status).toBe(404);
    },
    SLOW,
  );

  it(
    'a malformed --metrics-listen is a usage error',
    async () => {
      const r = await runCli(['serve', '--port', '0', '--data-dir', join(dir, 'data'), '--metrics-listen', 'nope']);
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(/^error: usage: /);
    },
    SLOW,
  );
});
