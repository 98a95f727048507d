// The honest baseline (issue 17): an inventory endpoint as a GLPI admin would otherwise run one, with
// no Latchkey code at all — bare hono + postgres.js, one prepared INSERT of the posted JSON into an
// equally indexed table, nothing else. Run as its own process, on its own database of the same
// PostgreSQL, so that neither the product's middleware nor its process share anything with it.
//   node --import tsx bench/bare-baseline-server.ts POSTGRES_URL
// Prints "listening on URL" once ready; stops on SIGTERM.
import { serve } from '@hono/node-server';
import { Hono } from 'hono';
import postgres from 'postgres';
import { randomBytes } from 'node:crypto';

const DATABASE = 'latchkey_bench_bare';
const url = new URL(process.argv[2] ?? 'postgres://postgres@127.0.0.1:5432/test');

// Its own database, made once.
const admin = postgres(url.href, { max: 1, onnotice: () => {} });
const [exists] = await admin`SELECT 1 AS one FROM pg_database WHERE datname = ${DATABASE}`;
if (!exists) await admin.unsafe(`CREATE DATABASE ${DATABASE}`);
await admin.end();

url.pathname = `/${DATABASE}`;
// The same pool size as the product's bench server (bench/fixtures.ts).
const sql = postgres(url.href, { max: 20, onnotice: () => {} });
// The inventories table as Latchkey has it: same columns, key, foreign key and index.
await sql.unsafe(`
  DROP TABLE IF EXISTS inventories;
  DROP TABLE IF EXISTS agents;
  CREATE TABLE agents (id text PRIMARY KEY);
  CREATE TABLE inventories (
    id bigserial PRIMARY KEY,
    agent_id text NOT NULL REFERENCES agents (id),
    message_id bytea NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now(),
    size integer NOT NULL,
    content jsonb NOT NULL
  );
  CREATE INDEX inventories_agent_received_idx ON inventories (agent_id, received_at DESC);
  INSERT INTO agents (id) VALUES ('baseline');
`);

const INSERT = `INSERT INTO inventories (agent_id, message_id, received_at, size, content)
  VALUES ($1::text, $2::bytea, now(), $3::int, $4::text::jsonb)`;

const app = new Hono();
app.post('/ingest', async (c) => {
  const text = await c.req.text();
  JSON.parse(text); // refuse what is not JSON, as any real endpoint would
  await sql.unsafe(INSERT, ['baseline', randomBytes(16), text.length, text], { prepare: true });
  return c.json({ status: 'ok' });
});

const server = serve({ fetch: app.fetch, hostname: '127.0.0.1', port: 0 }, (info) => {
  process.stdout.write(`listening on http://127.0.0.1:${info.port}\n`);
});
process.on('SIGTERM', () => {
  server.close();
  void sql.end({ timeout: 1 }).then(() => process.exit(0));
});
