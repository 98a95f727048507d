// Bench fixtures: a fresh PostgreSQL schema, an in-process server on loopback, enrolled agents, and
// GLPI inventories of a target size.
import { randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { createAdaptorServer } from '@hono/node-server';
import { getConnInfo } from '@hono/node-server/conninfo';
import { adminKeys } from '../src/db/schema.js';
import { applyMigrations } from '../src/db/migrate.js';
import { readMigrations } from '../src/db/migrations-fs.js';
import { openPostgres } from '../src/db/postgres.js';
import type { Database } from '../src/db/database.js';
import type { ProtocolContext } from '../src/protocol/crypto/types.js';
import { selectCrypto } from '../src/runtime/crypto.js';
import { gunzipBounded } from '../src/runtime/zlib.js';
import { composeServer, type ServerConfig } from '../src/server/compose.js';
import { deriveIdentity, type ServerIdentity } from '../src/server/identity.js';
import { silentLogger } from '../src/server/logger.js';
import { generateAdminCredential } from '../src/server/services/admin-credentials.js';
import { noTelemetry } from '../src/server/telemetry.js';
import type { App } from '../src/server/types.js';

export const random = (n: number) => new Uint8Array(randomBytes(n));
export const POSTGRES_URL = process.env.DATABASE_URL || 'postgres://postgres@127.0.0.1:5432/test';

export interface BenchServer {
  url: string;
  app: App;
  database: Database;
  identity: ServerIdentity;
  ctx: ProtocolContext;
  adminToken: string;
  close(): Promise<void>;
}

export async function startBenchServer(overrides: Partial<ServerConfig> = {}, mount?: (app: App) => void): Promise<BenchServer> {
  const schema = `bench_${randomBytes(5).toString('hex')}`;
  const database = await openPostgres({ url: POSTGRES_URL, schema, maxConnections: 20 });
  await applyMigrations(database, await readMigrations());
  const crypto = await selectCrypto();
  const ctx: ProtocolContext = { crypto, random, now: () => Date.now() };
  const identity = await deriveIdentity(crypto, random(32), random(32));
  const admin = generateAdminCredential(random);
  await database.db.insert(adminKeys).values({ id: admin.id, name: 'bench', secretHash: admin.secretHash, scopes: ['*'] });
  const logger = process.env.BENCH_LOG
    ? { ...silentLogger, error: (o: object) => console.error(JSON.stringify(o).slice(0, 600)) }
    : silentLogger;
  const { app } = composeServer({
    database,
    identity,
    ctx,
    logger,
    telemetry: noTelemetry,
    clientAddress: (c) => getConnInfo(c).remote.address,
    gunzip: gunzipBounded,
    ...overrides,
  });
  mount?.(app);
  const server = createAdaptorServer({ fetch: app.fetch, hostname: '127.0.0.1' });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    app,
    database,
    identity,
    ctx,
    adminToken: admin.credential,
    close: async () => {
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await database.withSession((run) => run(`DROP SCHEMA "${schema}" CASCADE`));
      await database.close();
    },
  };
}

export async function createToken(server: Pick<BenchServer, 'url' | 'adminToken'>, uses: number): Promise<string> {
  const res = await fetch(`${server.url}/v1/admin/tokens`, {
    method: 'POST',
    headers: { authorization: `Bearer ${server.adminToken}`, 'content-type': 'application/json' },
    body: JSON.stringify({ uses, ttlSeconds: 3600 }),
  });
  return ((await res.json()) as { token: string }).token;
}

/** A valid GLPI computer inventory of about `bytes` bytes (software entries fill it up). */
export function inventoryOfSize(bytes: number, deviceid: string): string {
  const inv = {
    deviceid,
    itemtype: 'Computer',
    action: 'inventory',
    content: {
      versionclient: 'GLPI-Agent_v1.7',
      hardware: { name: deviceid, uuid: randomBytes(16).toString('hex') },
      operatingsystem: { name: 'Debian GNU/Linux', version: '12', arch: 'x86_64' },
      softwares: [] as { name: string; version: string; publisher: string }[],
    },
  };
  let i = 0;
  while (JSON.stringify(inv).length < bytes - 80) {
    inv.content.softwares.push({
      name: `package-${i}-${randomBytes(4).toString('hex')}`,
      version: `${i % 7}.${i % 13}.${i % 5}`,
      publisher: 'Debian',
    });
    i++;
  }
  return JSON.stringify(inv);
}
