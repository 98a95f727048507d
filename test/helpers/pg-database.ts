// A fresh PostgreSQL database per test, for tests that run the real server process (which uses the
// `public` schema of whatever database its URL names).
import { randomBytes } from 'node:crypto';
import postgres from 'postgres';
import { postgresUrl } from './db.js';

export interface TempDatabase {
  url: string;
  drop(): Promise<void>;
}

export async function createTempPostgresDatabase(): Promise<TempDatabase> {
  if (!postgresUrl) throw new Error('PostgreSQL not reachable');
  const name = `lk_${randomBytes(6).toString('hex')}`;
  const admin = postgres(postgresUrl, { max: 1, onnotice: () => {} });
  await admin.unsafe(`CREATE DATABASE ${name}`);
  await admin.end();
  const url = new URL(postgresUrl);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    drop: async () => {
      const a = postgres(postgresUrl!, { max: 1, onnotice: () => {} });
      await a.unsafe(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await a.end();
    },
  };
}
