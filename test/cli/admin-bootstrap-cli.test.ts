// `latchkey admin bootstrap`, the real binary: a lost bootstrap credential is replaced straight in
// the database; with --revoke-others the old one stops working; the secret lands in a 0600 file and
// never on stdout, and the recovery is audited.
import { readFile, rm, stat, mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dbKinds } from '../helpers/db.js';
import { createTempPostgresDatabase, type TempDatabase } from '../helpers/pg-database.js';
import { runCli, startServe } from '../helpers/process.js';

describe.each(dbKinds)('admin bootstrap on %s', (kind) => {
  let dir: string;
  let pg: TempDatabase | undefined;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'latchkey-bootstrap-'));
    if (kind === 'postgres') pg = await createTempPostgresDatabase();
  });
  afterAll(async () => {
    await pg?.drop();
    await rm(dir, { recursive: true, force: true });
  });

  it('replaces a lost bootstrap credential and revokes the old one', async () => {
    const data = join(dir, 'data');
    const dbEnv = pg ? { DATABASE_URL: pg.url } : {};
    const first = await startServe(['--data-dir', data], dbEnv);
    const old = (await readFile(join(data, 'admin.token'), 'utf8')).trim();
    expect(await first.stop()).toBe(0);
    await rm(join(data, 'admin.token'));

    const recovered = await runCli(['admin', 'bootstrap', '--data-dir', data, '--revoke-others', '--json'], dbEnv);
    expect(recovered.code, recovered.stderr).toBe(0);
    const summary = JSON.parse(recovered.stdout) as { id: string; revoked: string[]; file: string };
    expect(summary.file).toBe(join(data, 'admin.token'));
    expect(summary.revoked).toHaveLength(1);
    expect((await stat(summary.file)).mode & 0o777).toBe(0o600);
    const fresh = (await readFile(summary.file, 'utf8')).trim();
    expect(fresh).not.toBe(old);
    expect(recovered.stdout).not.toContain(fresh.split('.').at(-1));

    const server = await startServe(['--data-dir', data], dbEnv);
    try {
      const env = { LATCHKEY_SERVER: server.url };
      expect((await runCli(['token', 'list', '--admin-token', fresh], env)).code).toBe(0);
      const refused = await runCli(['token', 'list', '--admin-token', old], env);
      expect(refused.code).not.toBe(0);
      expect(refused.stderr).toContain('unauthorized');
      const audit = await runCli(['audit', '--json', '--admin-token', fresh], env);
      expect(audit.stdout).toContain('admin_key.recover');
    } finally {
      await server.stop();
    }
  });

  it('refuses a data dir that holds no database, creating nothing', async () => {
    const empty = join(dir, 'empty');
    const r = await runCli(['admin', 'bootstrap', '--data-dir', empty], {});
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^error: not_found: /);
    await expect(stat(empty)).rejects.toThrow();
  });
});
