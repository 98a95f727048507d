// The Worker for real: `wrangler dev --local` runs src/runtime/worker.ts in workerd (installed by
// npm, no network, no login) on a fresh local PostgreSQL database through the Hyperdrive binding,
// and the lifecycle scenario that Node passes (test/server/lifecycle.test.ts) runs unchanged against
// it. Needs PostgreSQL: skipped without it locally, a failure without it in CI.
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openPostgres } from '../../src/db/postgres.js';
import { applyMigrations } from '../../src/db/migrate.js';
import { readMigrations } from '../../src/db/migrations-fs.js';
import { adminKeys } from '../../src/db/schema.js';
import { generateAdminCredential } from '../../src/server/services/admin-credentials.js';
import { generateIdentitySecret } from '../../src/server/identity.js';
import { postgresUrl } from '../helpers/db.js';
import { createTempPostgresDatabase, type TempDatabase } from '../helpers/pg-database.js';
import { runLifecycleScenario } from '../helpers/scenario.js';

if (!postgresUrl && process.env.CI) throw new Error('CI: the Worker test needs PostgreSQL (DATABASE_URL or 127.0.0.1:5432)');

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const WRANGLER = join(ROOT, 'node_modules', 'wrangler', 'bin', 'wrangler.js');
const random = (n: number) => new Uint8Array(randomBytes(n));

interface Wrangler {
  url: string;
  child: ChildProcess;
  output(): string;
}

/** `wrangler dev` on a free port, offline and without telemetry; resolves when it is ready. */
async function startWrangler(dir: string, databaseUrl: string, identity: string): Promise<Wrangler> {
  // Hyperdrive's local connection string must name a password; trust auth ignores it.
  const local = new URL(databaseUrl);
  if (!local.password) local.password = 'unused';
  // The identity goes in as a secret from a file, never on a command line.
  await writeFile(join(dir, '.env'), `LATCHKEY_IDENTITY=${identity}\n`, { mode: 0o600 });
  const args = [
    WRANGLER,
    'dev',
    '--local',
    '--ip',
    '127.0.0.1',
    '--port',
    '0',
    '--inspector-port',
    '0',
    '--persist-to',
    join(dir, 'state'),
    '--env-file',
    join(dir, '.env'),
    '--show-interactive-dev-session=false',
    '--log-level',
    'info',
  ];
  const child = spawn(process.execPath, args, {
    cwd: ROOT,
    detached: true, // its own process group: workerd goes down with it
    stdio: ['ignore', 'pipe', 'pipe'],
    env: {
      PATH: process.env.PATH,
      HOME: dir,
      XDG_CONFIG_HOME: join(dir, 'config'),
      WRANGLER_LOG_PATH: join(dir, 'logs'),
      WRANGLER_SEND_METRICS: 'false',
      WRANGLER_SEND_ERROR_REPORTS: 'false',
      WRANGLER_HIDE_BANNER: 'true', // the banner is what checks npm for updates
      CLOUDFLARE_CF_FETCH_ENABLED: 'false',
      CLOUDFLARE_HYPERDRIVE_LOCAL_CONNECTION_STRING_HYPERDRIVE: local.toString(),
    },
  });
  let output = '';
  const ready = new Promise<string>((resolve, reject) => {
    const onData = (d: Buffer) => {
      output += d.toString();
      const url = /Ready on (http:\/\/127\.0\.0\.1:\d+)/.exec(output)?.[1];
      if (url) resolve(url);
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    child.once('exit', (code) => reject(new Error(`wrangler dev exited with ${code}:\n${output}`)));
  });
  const timeout = new Promise<never>((_, reject) =>
    setTimeout(() => reject(new Error(`wrangler dev not ready in 120 s:\n${output}`)), 120_000).unref(),
  );
  try {
    return { url: await Promise.race([ready, timeout]), child, output: () => output };
  } catch (err) {
    await stopWrangler(child);
    throw err;
  }
}

async function stopWrangler(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return;
  const exited = once(child, 'exit');
  process.kill(-child.pid, 'SIGTERM');
  const force = setTimeout(() => child.pid !== undefined && process.kill(-child.pid, 'SIGKILL'), 10_000);
  await exited;
  clearTimeout(force);
}

describe.skipIf(!postgresUrl)('the Worker in workerd (wrangler dev --local) on PostgreSQL', () => {
  let dir: string;
  let pg: TempDatabase;
  let wrangler: Wrangler | undefined;
  let adminToken: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'latchkey-worker-'));
    pg = await createTempPostgresDatabase();
    // The Worker does not migrate by itself: the code's migrator first, as `latchkey migrate` does.
    const database = await openPostgres({ url: pg.url });
    try {
      await applyMigrations(database, await readMigrations());
      const admin = generateAdminCredential(random);
      await database.db.insert(adminKeys).values({ id: admin.id, name: 'bootstrap', secretHash: admin.secretHash, scopes: ['*'] });
      adminToken = admin.credential;
    } finally {
      await database.close();
    }
    wrangler = await startWrangler(dir, pg.url, await generateIdentitySecret(random));
  }, 180_000);

  afterAll(async () => {
    if (wrangler) await stopWrangler(wrangler.child);
    await pg?.drop();
    await rm(dir, { recursive: true, force: true });
  }, 60_000);

  it('answers discovery and readiness from the isolate', async () => {
    const wk = (await (await fetch(`${wrangler!.url}/.well-known/latchkey`)).json()) as { protocol: string };
    expect(wk.protocol).toBe('latchkey');
    expect(await (await fetch(`${wrangler!.url}/readyz`)).json()).toEqual({ status: 'ready' });
  });

  it('passes the lifecycle scenario Node passes', async () => {
    await runLifecycleScenario({ url: wrangler!.url, adminToken, stateDir: dir });
    // Nothing went wrong inside the isolate (the Worker logs errors as JSON lines on stderr).
    expect(wrangler!.output()).not.toMatch(/"level":"error"|Cannot perform I\/O|hung/);
  }, 120_000);
});
