// The run's PostgreSQL discovery (global-setup): a missing PostgreSQL is a failure under CI and when
// DATABASE_URL names it, a skip only locally; a default server without the database gets it created.
import { createServer, type AddressInfo } from 'node:net';
import { randomBytes } from 'node:crypto';
import postgres from 'postgres';
import { describe, expect, it } from 'vitest';
import { postgresUrl } from './db.js';
import { discoverPostgres } from './postgres.js';

/** A loopback port nothing listens on (taken from the kernel, then released). */
async function closedPort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  const { port } = s.address() as AddressInfo;
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return port;
}

describe('PostgreSQL discovery', () => {
  it('without PostgreSQL: a failure under CI and for an explicit DATABASE_URL, PGlite only otherwise', async () => {
    const nowhere = `postgres://postgres@127.0.0.1:${await closedPort()}/test`;
    await expect(discoverPostgres({ CI: 'true' }, nowhere)).rejects.toThrow(/CI=true: PostgreSQL is required/);
    await expect(discoverPostgres({ CI: '1' }, nowhere)).rejects.toThrow(/PostgreSQL is required/);
    await expect(discoverPostgres({ DATABASE_URL: nowhere })).rejects.toThrow(/DATABASE_URL .* does not answer/);
    const local = await discoverPostgres({}, nowhere);
    expect(local.url).toBeUndefined();
    expect(local.source).toMatch(/does not answer \(ECONNREFUSED\)/);
    expect((await discoverPostgres({ CI: 'false' }, nowhere)).url).toBeUndefined();
  });

  it.runIf(postgresUrl)('finds the default server and creates its database when missing; never creates a DATABASE_URL one', async () => {
    const name = `lk_disc_${randomBytes(5).toString('hex')}`;
    const missing = new URL(postgresUrl!);
    missing.pathname = `/${name}`;
    const admin = postgres(postgresUrl!, { max: 1, onnotice: () => {} });
    try {
      await expect(discoverPostgres({ DATABASE_URL: missing.toString() })).rejects.toThrow(/does not answer: 3D000/);
      const found = await discoverPostgres({ CI: 'true' }, missing.toString());
      expect(found).toEqual({ url: missing.toString(), source: 'the default URL (database created)' });
      expect(await discoverPostgres({}, missing.toString())).toEqual({ url: missing.toString(), source: 'the default URL' });
      expect(await admin`SELECT 1 FROM pg_database WHERE datname = ${name}`).toHaveLength(1);
    } finally {
      await admin.unsafe(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await admin.end();
    }
  });
});
