// One HTTP scenario, run unchanged against every runtime (test/server/lifecycle.test.ts on Node,
// test/runtime/worker.test.ts in workerd): an agent enrolls with a one-time token, sends a real
// GLPI inventory and gets a verified receipt; the same envelope again is refused as a replay; after
// the admin revokes the agent its next message is refused; and the enrollment failure budget holds
// across requests (per-process state, not per-request state).
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { expect } from 'vitest';
import { enrollAgent } from '../../src/agent/enroll.js';
import { sealInventory, submitEnvelope } from '../../src/agent/send.js';
import { loadState } from '../../src/agent/state.js';
import { utf8 } from '../../src/protocol/bytes.js';
import { testContext } from './protocol.js';

export interface ScenarioTarget {
  url: string;
  /** A full-scope admin credential. */
  adminToken: string;
  /** A fresh directory for the agent's state. */
  stateDir: string;
}

const ctx = testContext();

export async function runLifecycleScenario({ url, adminToken, stateDir }: ScenarioTarget): Promise<void> {
  const admin = (path: string, body: unknown = {}) =>
    fetch(`${url}${path}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
  const postEnvelope = (envelope: unknown) =>
    fetch(`${url}/v1/messages`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(envelope) });
  // The code is the contract; the status only has to be a client error (the spec's table maps it).
  const errorOf = async (res: Response): Promise<{ error: { code: string } }> => {
    expect(res.status).toBeGreaterThanOrEqual(400);
    expect(res.status).toBeLessThan(500);
    return (await res.json()) as { error: { code: string } };
  };

  // Enroll with a one-time token.
  const created = await admin('/v1/admin/tokens', { uses: 1 });
  expect(created.status).toBe(201);
  const { token } = (await created.json()) as { token: string };
  const record = await enrollAgent(ctx, { serverUrl: url, token, stateDir: join(stateDir, 'agent'), name: 'scenario-agent' });
  const agent = await loadState(ctx.crypto, join(stateDir, 'agent'));

  // Send a real inventory (gzip, sealed, signed); the receipt verifies against the pinned key.
  const text = await readFile(new URL('../fixtures/glpi/format/computer_1.json', import.meta.url), 'utf8');
  const envelope = await sealInventory(ctx, agent, utf8(text));
  const { receipt } = await submitEnvelope(ctx, agent, envelope);
  expect(receipt.status).toBe('accepted');
  const stored = await fetch(`${url}/v1/admin/agents/${record.agentId}/inventory`, { headers: { authorization: `Bearer ${adminToken}` } });
  expect(stored.status).toBe(200);
  const body = (await stored.json()) as { inventory: unknown; messageId: string };
  expect(body.messageId).toBe(receipt.mid);
  expect(body.inventory).toEqual(JSON.parse(text));

  // The same envelope again: refused as a replay.
  expect((await errorOf(await postEnvelope(envelope))).error.code).toBe('replay_detected');

  // Revoked: the very next message is refused.
  expect((await admin(`/v1/admin/agents/${record.agentId}/revoke`, { reason: 'scenario' })).status).toBe(200);
  const afterRevoke = await postEnvelope(await sealInventory(ctx, agent, utf8(text)));
  expect((await errorOf(afterRevoke)).error.code).toBe('agent_revoked');

  // The enrollment failure budget (10 at once) is the process's, not the request's: bad requests
  // from one source are answered 429 well before 30, with a Retry-After.
  let limited: Response | undefined;
  for (let i = 0; i < 30 && !limited; i++) {
    const res = await fetch(`${url}/v1/enroll`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"v":1}' });
    if (res.status === 429) limited = res;
    else expect((await errorOf(res)).error.code).toBe('envelope_malformed');
  }
  expect(limited).toBeDefined();
  expect((await errorOf(limited!)).error.code).toBe('rate_limited');
  expect(Number(limited!.headers.get('retry-after'))).toBeGreaterThan(0);
}
