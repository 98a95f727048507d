// Cloudflare Workers entry: the same app, on PostgreSQL through Hyperdrive, with the identity from
// the LATCHKEY_IDENTITY secret. One database client per request (Hyperdrive pools connections).
import { openPostgres } from '../db/postgres.js';
import { createNativeCrypto } from '../protocol/crypto/native.js';
import type { ProtocolContext } from '../protocol/crypto/types.js';
import { createApp } from '../server/app.js';
import { decodeIdentitySecret, type ServerIdentity } from '../server/identity.js';
import { silentLogger, type Logger } from '../server/logger.js';
import { noTelemetry } from '../server/telemetry.js';
import { loadDocsAssets } from './docs-assets-worker.js';

interface Env {
  HYPERDRIVE: { connectionString: string };
  LATCHKEY_IDENTITY: string;
}

interface ExecutionContext {
  waitUntil(promise: Promise<unknown>): void;
}

const crypto = createNativeCrypto();
const ctx: ProtocolContext = {
  crypto,
  random: (n) => globalThis.crypto.getRandomValues(new Uint8Array(n)),
  now: () => Date.now(),
};
let identity: Promise<ServerIdentity> | undefined;

/** JSON lines to the Workers log (console is the Workers logging API). */
const logger: Logger = {
  ...silentLogger,
  warn: (obj, msg) => console.error(JSON.stringify({ level: 'warn', msg, ...obj })),
  error: (obj, msg) => console.error(JSON.stringify({ level: 'error', msg, ...obj })),
};

export default {
  async fetch(request: Request, env: Env, execution: ExecutionContext): Promise<Response> {
    identity ??= decodeIdentitySecret(crypto, env.LATCHKEY_IDENTITY);
    const database = await openPostgres({ url: env.HYPERDRIVE.connectionString, maxConnections: 1 });
    const app = createApp({
      database,
      identity: await identity,
      ctx,
      logger,
      telemetry: noTelemetry,
      clientAddress: (c) => c.req.header('cf-connecting-ip'),
      docsAssets: loadDocsAssets,
    });
    try {
      return await app.fetch(request, env);
    } finally {
      execution.waitUntil(database.close());
    }
  },
};
