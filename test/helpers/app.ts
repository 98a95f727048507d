// The real app over real HTTP (loopback, port 0) on a fresh, isolated test database, in-process so
// tests can also look at the database. Each call: own schema, own identity, own bootstrap admin.
import { randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { createAdaptorServer } from '@hono/node-server';
import { getConnInfo } from '@hono/node-server/conninfo';
import { adminKeys } from '../../src/db/schema.js';
import type { ProtocolContext } from '../../src/protocol/crypto/types.js';
import { selectCrypto } from '../../src/runtime/crypto.js';
import { gunzipBounded } from '../../src/runtime/zlib.js';
import { clientAddressFrom, parseTrustedProxies } from '../../src/server/client-address.js';
import { composeServer, type ServerState } from '../../src/server/compose.js';
import type { EnrollmentPolicy } from '../../src/server/services/enrollment.js';
import type { IngestPolicy } from '../../src/server/services/ingest.js';
import type { KeyRequestPolicy, KeySourceTransport } from '../../src/server/services/key-request.js';
import { deriveIdentity, type ServerIdentity } from '../../src/server/identity.js';
import { createKeyRing } from '../../src/server/key-ring.js';
import { silentLogger, type Logger } from '../../src/server/logger.js';
import { generateAdminCredential } from '../../src/server/services/admin-credentials.js';
import { noTelemetry, type Telemetry } from '../../src/server/telemetry.js';
import type { App, AppLimits } from '../../src/server/types.js';
import { createTestDatabase, type DbKind, type TestDatabase } from './db.js';

export interface TestServer {
  url: string;
  app: App;
  /** The server's per-process state (budgets, caches), as composeServer built it. */
  state: ServerState;
  database: TestDatabase;
  identity: ServerIdentity;
  ctx: ProtocolContext;
  /** A bootstrap-scope (`*`) admin credential. */
  adminToken: string;
  close(): Promise<void>;
}

export interface TestServerOptions {
  limits?: Partial<AppLimits>;
  ingestPolicy?: Partial<IngestPolicy>;
  enrollmentPolicy?: Partial<EnrollmentPolicy>;
  logger?: Logger;
  telemetry?: Telemetry;
  /** Override the clock (ms since epoch). */
  now?: () => number;
  /** Reuse an identity (e.g. two servers as one deployment). */
  identity?: ServerIdentity;
  /** Reuse a database (e.g. two instances on one schema). */
  database?: TestDatabase;
  /** During a server key rotation: previous identities still accepted, and the next one. */
  previous?: ServerIdentity[];
  next?: ServerIdentity;
  /** Reverse proxies trusted to name the client (serve --trust-proxy). */
  trustProxy?: string[];
  /** An external key source (spec §20.2) and its policy overrides. */
  keySource?: KeySourceTransport;
  keyRequestPolicy?: Partial<KeyRequestPolicy>;
}

export const random = (n: number): Uint8Array => new Uint8Array(randomBytes(n));

export async function startTestServer(kind: DbKind, opts: TestServerOptions = {}): Promise<TestServer> {
  const crypto = await selectCrypto();
  const ctx: ProtocolContext = { crypto, random, now: opts.now ?? (() => Date.now()) };
  const database = opts.database ?? (await createTestDatabase(kind));
  const identity = opts.identity ?? (await deriveIdentity(crypto, random(32), random(32)));
  const admin = generateAdminCredential(random);
  await database.db.insert(adminKeys).values({ id: admin.id, name: 'bootstrap', secretHash: admin.secretHash, scopes: ['*'] });
  const trusted = parseTrustedProxies(opts.trustProxy ?? []);
  if ('invalid' in trusted) throw new Error(`bad trustProxy ${trusted.invalid}`);
  const { app, state } = composeServer({
    database,
    identity,
    ctx,
    logger: opts.logger ?? silentLogger,
    telemetry: opts.telemetry ?? noTelemetry,
    clientAddress: clientAddressFrom((c) => getConnInfo(c).remote.address, trusted.cidrs),
    gunzip: gunzipBounded,
    limits: opts.limits,
    ingestPolicy: opts.ingestPolicy,
    enrollmentPolicy: opts.enrollmentPolicy,
    keyRing: createKeyRing(identity, opts.previous ?? [], opts.next),
    keySource: opts.keySource,
    keyRequestPolicy: opts.keyRequestPolicy,
  });
  const server = createAdaptorServer({ fetch: app.fetch, hostname: '127.0.0.1' });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    app,
    state,
    database,
    identity,
    ctx,
    adminToken: admin.credential,
    close: async () => {
      await new Promise<void>((resolve) => server.close(() => resolve()));
      if (!opts.database) await database.dispose();
    },
  };
}
