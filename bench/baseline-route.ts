// The baselines the ingest benchmark compares against: the same JSON, unsealed and unauthenticated
// (what GLPI accepts today), parsed and stored into the same table. Mounted only by bench/ingest.ts
// on its own app instance; the product never mounts them.
//   /bench/baseline           the insert as the ORM issues it by default (drizzle, unprepared)
//   /bench/baseline-prepared  the same insert as a prepared statement, like the sealed path's
// The first is the straightforward endpoint the target is measured against; the second
// isolates the cost of the protocol itself from that of query planning.
import { randomBytes } from 'node:crypto';
import { inventories } from '../src/db/schema.js';
import type { App } from '../src/server/types.js';

const INSERT = `INSERT INTO inventories (agent_id, message_id, received_at, size, content)
  VALUES ($1::text, $2::bytea, now(), $3::int, $4::text::jsonb)`;

export function mountBaseline(app: App, agentId: string): void {
  app.post('/bench/baseline', async (c) => {
    const text = await c.req.text();
    const content: unknown = JSON.parse(text);
    await c
      .get('deps')
      .database.db.insert(inventories)
      .values({ agentId, messageId: new Uint8Array(randomBytes(16)), size: text.length, content });
    return c.json({ status: 'ok' });
  });

  let insert: ((params: readonly unknown[]) => Promise<unknown>) | undefined;
  app.post('/bench/baseline-prepared', async (c) => {
    const text = await c.req.text();
    JSON.parse(text); // refuse what is not JSON, as any real endpoint would
    insert ??= c.get('deps').database.prepared(INSERT);
    await insert([agentId, new Uint8Array(randomBytes(16)), text.length, text]);
    return c.json({ status: 'ok' });
  });
}
