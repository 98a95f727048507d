// The baseline the ingest benchmark compares against: the same JSON, unsealed and unauthenticated
// (what GLPI accepts today), parsed and stored into the same table. Mounted only by bench/ingest.ts
// on its own app instance; the product never mounts it.
import { randomBytes } from 'node:crypto';
import { inventories } from '../src/db/schema.js';
import type { App } from '../src/server/app.js';

export function mountBaseline(app: App, agentId: string): void {
  app.post('/bench/baseline', async (c) => {
    const text = await c.req.text();
    const content: unknown = JSON.parse(text);
    await c.get('deps').database.db.insert(inventories).values({ agentId, messageId: new Uint8Array(randomBytes(16)), size: text.length, content });
    return c.json({ status: 'ok' });
  });
}
