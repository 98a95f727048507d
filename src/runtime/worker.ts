// Cloudflare Workers entry: the same app, on PostgreSQL through Hyperdrive, with the identity from
// the LATCHKEY_IDENTITY secret. The server (budgets, caches, the app) is composed once per isolate;
// only the database client is per request, because workerd refuses to let one request use a socket
// another request opened (Hyperdrive pools the real connections, so a client per request is cheap).
import type { Context, ExecutionContext } from 'hono';
import { openPostgres } from '../db/postgres.js';
import { createWebCrypto } from '../protocol/crypto/webcrypto.js';
import type { ProtocolContext } from '../protocol/crypto/types.js';
import { composeServer, type Server } from '../server/compose.js';
import { decodeIdentitySecret } from '../server/identity.js';
import { createKeyRing } from '../server/key-ring.js';
import { silentLogger, type Logger } from '../server/logger.js';
import { noTelemetry } from '../server/telemetry.js';
import { gunzipBounded } from './zlib.js';
import { loadDocsAssets } from './docs-assets-worker.js';

interface Env {
  HYPERDRIVE: { connectionString: string };
  LATCHKEY_IDENTITY: string;
  /** During a key rotation (spec §14): previous identities, space-separated, and the next one. */
  LATCHKEY_PREVIOUS_IDENTITY?: string;
  LATCHKEY_NEXT_IDENTITY?: string;
}

const crypto = createWebCrypto();
const ctx: ProtocolContext = {
  crypto,
  random: (n) => globalThis.crypto.getRandomValues(new Uint8Array(n)),
  now: () => Date.now(),
};

/** JSON lines to the Workers log (console is the Workers logging API). */
const logger: Logger = {
  ...silentLogger,
  warn: (obj, msg) => console.error(JSON.stringify({ level: 'warn', msg, ...obj })),
  error: (obj, msg) => console.error(JSON.stringify({ level: 'error', msg, ...obj })),
};

/** One per isolate: built on the first request (secrets arrive with it), reused by every later one. */
let server: Promise<Server> | undefined;

async function compose(env: Env): Promise<Server> {
  const identity = await decodeIdentitySecret(crypto, env.LATCHKEY_IDENTITY);
  const previous = await Promise.all(
    (env.LATCHKEY_PREVIOUS_IDENTITY ?? '')
      .split(/\s+/)
      .filter(Boolean)
      .map((s) => decodeIdentitySecret(crypto, s)),
  );
  const next = env.LATCHKEY_NEXT_IDENTITY ? await decodeIdentitySecret(crypto, env.LATCHKEY_NEXT_IDENTITY) : undefined;
  return composeServer({
    identity,
    keyRing: createKeyRing(identity, previous, next),
    ctx,
    logger,
    telemetry: noTelemetry,
    clientAddress: (c) => c.req.header('cf-connecting-ip'),
    gunzip: gunzipBounded,
    docsAssets: loadDocsAssets,
    database: {
      open: (c: Context) => openPostgres({ url: (c.env as Env).HYPERDRIVE.connectionString, maxConnections: 1 }),
      release: (c, database) => c.executionCtx.waitUntil(database.close()),
    },
  });
}

export default {
  async fetch(request: Request, env: Env, execution: ExecutionContext): Promise<Response> {
    server ??= compose(env);
    return (await server).app.fetch(request, env, execution);
  },
};
