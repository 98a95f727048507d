// The real `latchkey` binary: serve, token create/list/revoke, agent enroll, agents list, audit.
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { describeEachDbSideBySide } from '../helpers/db.js';
import { createTempPostgresDatabase, type TempDatabase } from '../helpers/pg-database.js';
import { runCli, startServe, type ServeProcess } from '../helpers/process.js';

describeEachDbSideBySide('enrollment CLI against a real server on %s', (kind) => {
  let dir: string;
  let server: ServeProcess;
  let other: ServeProcess;
  let pg: TempDatabase | undefined;
  let env: Record<string, string>;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'latchkey-cli-'));
    if (kind === 'postgres') pg = await createTempPostgresDatabase();
    server = await startServe(['--data-dir', join(dir, 'data')], pg ? { DATABASE_URL: pg.url } : {});
    other = await startServe(['--data-dir', join(dir, 'other')]);
    env = { LATCHKEY_SERVER: server.url, LATCHKEY_DATA_DIR: join(dir, 'data') };
  });
  afterAll(async () => {
    await server?.stop();
    await other?.stop();
    await pg?.drop();
    await rm(dir, { recursive: true, force: true });
  });

  it('creates a token, enrolls with it once, lists and audits', async () => {
    const created = await runCli(['token', 'create', '--ttl', '10m', '--label', 'site=lab', '--label', 'env=test', '--json'], env);
    expect(created.code).toBe(0);
    const { token, id, expiresAt } = JSON.parse(created.stdout) as { token: string; id: string; expiresAt: string };
    expect(Date.parse(expiresAt) - Date.now()).toBeGreaterThan(9 * 60_000);

    const state = join(dir, 'agent1');
    const enrolled = await runCli(
      ['agent', 'enroll', '--server', server.url, '--token', token, '--state-dir', state, '--name', 'lab-01', '--json'],
      {},
    );
    expect(enrolled.code).toBe(0);
    const { agentId } = JSON.parse(enrolled.stdout) as { agentId: string };
    expect((await stat(join(state, 'keys.json'))).mode & 0o777).toBe(0o600);
    expect((await stat(state)).mode & 0o777).toBe(0o700);

    const again = await runCli(['agent', 'enroll', '--server', server.url, '--token', token, '--state-dir', join(dir, 'agent2')], {});
    expect(again.code).not.toBe(0);
    expect(again.stderr).toMatch(/^error: token_used:/);

    const agents = JSON.parse((await runCli(['agents', 'list', '--json'], env)).stdout) as {
      id: string;
      name: string;
      labels: Record<string, string>;
    }[];
    expect(agents).toContainEqual(expect.objectContaining({ id: agentId, name: 'lab-01', labels: { site: 'lab', env: 'test' } }));
    const tokens = JSON.parse((await runCli(['token', 'list', '--json'], env)).stdout) as { id: string; uses: { agentId: string }[] }[];
    expect(tokens.find((t) => t.id === id)?.uses[0]?.agentId).toBe(agentId);
    const plain = await runCli(['token', 'list'], env);
    expect(plain.stdout).not.toContain(token.slice(4));

    const verify = await runCli(['audit', 'verify'], env);
    expect(verify.code).toBe(0);
    expect(verify.stdout).toMatch(/audit chain intact/);
    const audit = JSON.parse((await runCli(['audit', '--json'], env)).stdout) as { action: string; code: string | null }[];
    expect(audit.map((e) => e.code)).toContain('token_used');
  });

  it('refuses a server whose key differs from the token, a malformed token, a revoked token', async () => {
    const { token, id } = JSON.parse((await runCli(['token', 'create', '--json'], env)).stdout) as { token: string; id: string };
    const pinned = await runCli(['agent', 'enroll', '--server', other.url, '--token', token, '--state-dir', join(dir, 'x1')], {});
    expect(pinned.code).not.toBe(0);
    expect(pinned.stderr).toMatch(/^error: server_key_mismatch:/);
    const typo = await runCli(
      [
        'agent',
        'enroll',
        '--server',
        server.url,
        '--token',
        token.replace(/.$/, (c) => (c === 'A' ? 'B' : 'A')),
        '--state-dir',
        join(dir, 'x2'),
      ],
      {},
    );
    expect(typo.stderr).toMatch(/^error: token_malformed:/);
    expect((await runCli(['token', 'revoke', id], env)).code).toBe(0);
    const revoked = await runCli(['agent', 'enroll', '--server', server.url, '--token', token, '--state-dir', join(dir, 'x3')], {});
    expect(revoked.stderr).toMatch(/^error: token_revoked:/);
  });

  it('admin commands without a credential or with a wrong one exit non-zero with the code', async () => {
    const none = await runCli(['token', 'list'], { LATCHKEY_SERVER: server.url, LATCHKEY_DATA_DIR: join(dir, 'nowhere') });
    expect(none.code).not.toBe(0);
    expect(none.stderr).toMatch(/^error: unauthorized:/);
    const wrong = await runCli(['token', 'list', '--admin-token', `lka.AAAAAAAAAAAA.${'A'.repeat(43)}`], { LATCHKEY_SERVER: server.url });
    expect(wrong.stderr).toMatch(/^error: unauthorized:/);
    const help = await runCli(['token', 'create', '--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/--name-pattern/);
  });
});
