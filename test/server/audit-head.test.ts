// The audit chain's head, signed by the server and kept outside the table (issue 10, item 13): an
// attacker with write access to the database deletes the newest entries, or rewrites them and
// recomputes every hash; the chain alone still verifies, an earlier signed head does not. Also: a
// stored time changed below the millisecond is caught. Real HTTP, real `latchkey` CLI, both databases.
import { sha256 } from '@noble/hashes/sha2.js';
import { asc, eq, gt } from 'drizzle-orm';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { auditHead, auditLog } from '../../src/db/schema.js';
import { b64u, concatBytes, utf8 } from '../../src/protocol/bytes.js';
import { signObject, verifySignedObject, type SignedObject } from '../../src/protocol/signed.js';
import { deriveIdentity } from '../../src/server/identity.js';
import { canonicalJson } from '../../src/server/services/audit.js';
import { random, startTestServer, type TestServer } from '../helpers/app.js';
import { dbKinds } from '../helpers/db.js';
import { runCli } from '../helpers/process.js';

interface Status {
  ok: boolean;
  entries: number;
  brokenAt?: number;
  problem?: string;
  head?: SignedObject;
}

describe.each(dbKinds)('signed audit head on %s', (kind) => {
  let server: TestServer;
  beforeEach(async () => {
    server = await startTestServer(kind);
    // Six audited admin actions.
    for (let i = 0; i < 6; i++) expect((await admin('POST', '/v1/admin/tokens', {})).status).toBe(201);
  });
  afterEach(async () => {
    await server.close();
  });

  function admin(method: string, path: string, body?: unknown): Promise<Response> {
    return fetch(`${server.url}${path}`, {
      method,
      headers: { authorization: `Bearer ${server.adminToken}`, 'content-type': 'application/json' },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
  }
  const verify = async (expectHead?: unknown): Promise<Status> => {
    const res =
      expectHead === undefined
        ? await admin('GET', '/v1/admin/audit/verify')
        : await admin('POST', '/v1/admin/audit/verify', { expectHead });
    expect(res.status).toBe(200);
    return (await res.json()) as Status;
  };
  const head = async (): Promise<SignedObject> => {
    const res = await admin('GET', '/v1/admin/audit/head');
    expect(res.status).toBe(200);
    return ((await res.json()) as { head: SignedObject }).head;
  };

  /** What an attacker with database access does: rewrite rows from `from` on and recompute every hash. */
  async function rewriteFrom(from: number, change: (details: Record<string, unknown>) => Record<string, unknown>): Promise<void> {
    const db = server.database.db;
    const rows = await db
      .select()
      .from(auditLog)
      .where(gt(auditLog.seq, from - 1))
      .orderBy(asc(auditLog.seq));
    let prev = rows[0]!.prevHash;
    for (const r of rows) {
      const details = change(r.details);
      const body = canonicalJson([
        r.seq,
        r.at.toISOString(),
        r.actor,
        r.action,
        r.outcome,
        r.code,
        r.sourceAddr,
        r.tokenId,
        r.agentId,
        details,
      ]);
      const hash = sha256(concatBytes(prev, utf8(body)));
      await db.update(auditLog).set({ details, prevHash: prev, hash }).where(eq(auditLog.seq, r.seq));
      // A forger who rewrites the newest entry moves the head row too, or the next append exposes it.
      await db.update(auditHead).set({ prevHash: prev, hash }).where(eq(auditHead.seq, r.seq));
      prev = hash;
    }
  }

  it('publishes a head signed by the server key, covering position, hash, time and key id', async () => {
    const signed = await head();
    expect(signed.typ).toBe('audit-head');
    expect(signed.kid).toBe(server.identity.signing.kid);
    const body = await verifySignedObject(server.ctx.crypto, server.identity.signing, 'audit-head', signed);
    const status = await verify();
    expect(status.ok).toBe(true);
    expect(body.seq).toBe(status.entries);
    expect(body.seq).toBeGreaterThanOrEqual(6);
    const last = await server.database.db.select().from(auditLog).where(eq(auditLog.seq, status.entries));
    expect(body.hash).toBe(b64u(last[0]!.hash));
    expect(Math.abs(Date.parse(String(body.at)) - Date.now())).toBeLessThan(60_000);
    // verify also returns the head of what it verified, signed.
    expect(status.head?.typ).toBe('audit-head');
  });

  it('deleting the newest entries: the chain still verifies, the earlier signed head does not', async () => {
    const before = await head();
    await server.database.db.delete(auditLog).where(gt(auditLog.seq, 4));
    expect((await verify()).ok).toBe(true); // what a chain alone cannot see
    const status = await verify(before);
    expect(status).toMatchObject({ ok: false, problem: 'truncated' });
  });

  it('rewriting the newest entries with recomputed hashes: the earlier signed head does not verify', async () => {
    const before = await head();
    const { seq } = (await verifySignedObject(server.ctx.crypto, server.identity.signing, 'audit-head', before)) as { seq: number };
    await rewriteFrom(seq - 1, (d) => ({ ...d, ttlSeconds: 1 }));
    expect((await verify()).ok).toBe(true);
    const status = await verify(before);
    expect(status).toMatchObject({ ok: false, problem: 'rewritten', brokenAt: seq });
    // A head taken before more entries were appended still proves the prefix it covers.
    const fresh = await head();
    expect((await admin('POST', '/v1/admin/tokens', {})).status).toBe(201);
    expect((await verify(fresh)).ok).toBe(true);
  });

  it('an expected head not signed by this server, or altered, is refused', async () => {
    const other = await deriveIdentity(server.ctx.crypto, random(32), random(32));
    const genuine = await head();
    const body = await verifySignedObject(server.ctx.crypto, server.identity.signing, 'audit-head', genuine);
    const forged = await signObject(
      server.ctx.crypto,
      { privateKey: other.signing.privateKey, kid: server.identity.signing.kid },
      'audit-head',
      { ...body, seq: 1 },
    );
    for (const bad of [forged, { ...genuine, body: forged.body }, { ...genuine, typ: 'receipt' }]) {
      const res = await admin('POST', '/v1/admin/audit/verify', { expectHead: bad });
      expect(res.status).toBe(401);
      expect(((await res.json()) as { error: { code: string } }).error.code).toBe('signature_invalid');
    }
    const res = await admin('POST', '/v1/admin/audit/verify', { expectHead: 'nope' });
    expect(res.status).toBe(400);
  });

  it('a stored time moved below the millisecond breaks the chain', async () => {
    await server.database.withSession((run) => run(`UPDATE audit_log SET at = at + interval '1 microsecond' WHERE seq = 3`));
    expect(await verify()).toMatchObject({ ok: false, brokenAt: 3 });
  });

  it('latchkey audit verify --expect-head: exit 0 on an intact chain, non-zero after truncation', async () => {
    const env = { LATCHKEY_SERVER: server.url, LATCHKEY_ADMIN_TOKEN: server.adminToken };
    const first = await runCli(['audit', 'verify', '--json'], env);
    expect(first.code, first.stderr).toBe(0);
    const printed = (JSON.parse(first.stdout) as Status).head!;
    const again = await runCli(['audit', 'verify', '--expect-head', JSON.stringify(printed)], env);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout).toContain('audit chain intact');

    await server.database.db.delete(auditLog).where(gt(auditLog.seq, 2));
    const plain = await runCli(['audit', 'verify'], env);
    expect(plain.code).toBe(0);
    const caught = await runCli(['audit', 'verify', '--expect-head', JSON.stringify(printed)], env);
    expect(caught.code).not.toBe(0);
    expect(caught.stderr).toMatch(/^error: audit_chain_truncated: /);
  }, 120_000);
});
