// Two real `latchkey serve` processes on one PostgreSQL, one identity: a renewal through one is
// honoured by the other at once, and a revocation through one is refused by the other on the very
// next request (sends and renewals), whatever either had cached. (The bootstrap admin credential is
// written by the first instance only: the database already has one when the second starts.)
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { postgresUrl } from '../helpers/db.js';
import { createTempPostgresDatabase, type TempDatabase } from '../helpers/pg-database.js';
import { runCli, startServe, type ServeProcess } from '../helpers/process.js';

const fixture = (name: string) => new URL(`../fixtures/glpi/${name}`, import.meta.url).pathname;

describe.skipIf(!postgresUrl)('lifecycle across two server processes on one PostgreSQL', () => {
  let dir: string;
  let db: TempDatabase;
  let a: ServeProcess;
  let b: ServeProcess;
  let state: string;
  let agentId: string;
  const send = (via: string) =>
    runCli(['agent', 'send', '--state-dir', state, '--file', fixture('format/computer_1_partial_memory.json'), '--via', via, '--json']);

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'latchkey-life-'));
    db = await createTempPostgresDatabase();
    const identity = (await runCli(['identity', 'generate'])).stdout.trim();
    const env = { DATABASE_URL: db.url, LATCHKEY_IDENTITY: identity };
    a = await startServe(['--data-dir', join(dir, 'a')], env);
    b = await startServe(['--data-dir', join(dir, 'b')], env);
    expect(a.fingerprint).toBe(b.fingerprint);
    const { token } = JSON.parse(
      (await runCli(['token', 'create', '--json'], { LATCHKEY_SERVER: a.url, LATCHKEY_DATA_DIR: join(dir, 'a') })).stdout,
    ) as { token: string };
    state = join(dir, 'agent');
    const enrolled = await runCli(['agent', 'enroll', '--server', a.url, '--token', token, '--state-dir', state, '--json']);
    expect(enrolled.code, enrolled.stderr).toBe(0);
    agentId = (JSON.parse(enrolled.stdout) as { agentId: string }).agentId;
  });
  afterAll(async () => {
    await a?.stop();
    await b?.stop();
    await db?.drop();
    await rm(dir, { recursive: true, force: true });
  });

  it('renews through one instance; the other accepts the new key at once', async () => {
    // Both instances know (and cache) the current key.
    expect(JSON.parse((await send(a.url)).stdout).status).toBe('accepted');
    expect(JSON.parse((await send(b.url)).stdout).status).toBe('accepted');
    const renewed = await runCli(['agent', 'renew', '--state-dir', state, '--via', a.url, '--json']);
    expect(renewed.code, renewed.stderr).toBe(0);
    const r = JSON.parse(renewed.stdout) as { keyId: string; previousKeyId: string };
    expect(r.keyId).not.toBe(r.previousKeyId);
    expect(JSON.parse((await send(b.url)).stdout).status).toBe('accepted');
    const listed = await runCli(['agents', 'list', '--json'], { LATCHKEY_SERVER: b.url, LATCHKEY_DATA_DIR: join(dir, 'a') });
    const agents = JSON.parse(listed.stdout) as { id: string; keys: { sigKid: string; status: string }[] }[];
    const keys = agents.find((x) => x.id === agentId)!.keys;
    expect(keys.find((k) => k.sigKid === r.keyId)?.status).toBe('active');
    expect(keys.find((k) => k.sigKid === r.previousKeyId)?.status).toBe('superseded');
  });

  it('revokes through one instance; the other refuses the next send and the next renewal', async () => {
    expect(JSON.parse((await send(a.url)).stdout).status).toBe('accepted'); // warm A's cache
    const revoked = await runCli(['agents', 'revoke', agentId, '--reason', 'key leaked in a backup'], {
      LATCHKEY_SERVER: b.url,
      LATCHKEY_DATA_DIR: join(dir, 'a'),
    });
    expect(revoked.code, revoked.stderr).toBe(0);
    const refused = await send(a.url);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toMatch(/agent_revoked/);
    const renew = await runCli(['agent', 'renew', '--state-dir', state, '--via', a.url]);
    expect(renew.code).not.toBe(0);
    expect(renew.stderr).toMatch(/agent_revoked/);
    const audit = await runCli(['audit', '--json'], { LATCHKEY_SERVER: a.url, LATCHKEY_DATA_DIR: join(dir, 'a') });
    const entries = JSON.parse(audit.stdout) as { action: string; details: Record<string, unknown> }[];
    expect(entries.find((e) => e.action === 'agent.revoke')?.details.reason).toBe('key leaked in a backup');
    expect(entries.some((e) => e.action === 'agent.renew')).toBe(true);
  });
});
