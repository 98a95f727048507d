// Finds the PostgreSQL the tests run against, once per run (from global-setup): DATABASE_URL when set,
// else the documented default, postgres://postgres@127.0.0.1:5432/test, creating the database `test`
// there when the server answers but has no such database. A DATABASE_URL that does not answer fails
// the run; so does a missing PostgreSQL under CI (CI=true), where skipping it would hide the tests
// that only PostgreSQL runs. Locally, without PostgreSQL, database tests run on PGlite only.
import postgres from 'postgres';

export const DEFAULT_TEST_DATABASE_URL = 'postgres://postgres@127.0.0.1:5432/test';

export interface PostgresDiscovery {
  /** The URL to use, or undefined when no PostgreSQL answers (and none is required). */
  url: string | undefined;
  /** Where it came from, or why there is none: printed at the start of every run. */
  source: string;
}

/** `CI` as most CI services and std-env read it: set and not "false"/"0". */
export const inCi = (env: NodeJS.ProcessEnv): boolean => !!env.CI && env.CI !== 'false' && env.CI !== '0';

/** The URL with any password hidden, for printing. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return '(unparseable URL)';
  }
}

async function probe(url: string): Promise<void> {
  const sql = postgres(url, { max: 1, connect_timeout: 3, onnotice: () => {} });
  try {
    await sql`SELECT 1`;
  } finally {
    await sql.end({ timeout: 1 });
  }
}

/** Creates the database the URL names, through the server's `postgres` maintenance database. */
async function createNamedDatabase(url: string): Promise<void> {
  const target = new URL(url);
  const name = decodeURIComponent(target.pathname.slice(1));
  const maintenance = new URL(url);
  maintenance.pathname = '/postgres';
  const sql = postgres(maintenance.toString(), { max: 1, connect_timeout: 3, onnotice: () => {} });
  try {
    await sql`CREATE DATABASE ${sql(name)}`;
  } catch (err) {
    // Another run created it in the meantime.
    if ((err as { code?: string }).code !== '42P04') throw err;
  } finally {
    await sql.end({ timeout: 1 });
  }
}

const reason = (err: unknown) => (err as { code?: string }).code ?? (err as Error).message;

export async function discoverPostgres(
  env: NodeJS.ProcessEnv = process.env,
  defaultUrl = DEFAULT_TEST_DATABASE_URL,
): Promise<PostgresDiscovery> {
  const explicit = env.DATABASE_URL || undefined;
  const url = explicit ?? defaultUrl;
  try {
    await probe(url);
    return { url, source: explicit ? 'DATABASE_URL' : 'the default URL' };
  } catch (err) {
    // 3D000: the server answers but the database does not exist. Only the default is created;
    // a URL someone set must work as given.
    if (!explicit && (err as { code?: string }).code === '3D000') {
      await createNamedDatabase(url);
      await probe(url);
      return { url, source: 'the default URL (database created)' };
    }
    if (explicit) throw new Error(`DATABASE_URL (${redactUrl(url)}) does not answer: ${reason(err)}`);
    if (inCi(env)) {
      throw new Error(
        `CI=${env.CI}: PostgreSQL is required but ${redactUrl(url)} does not answer (${reason(err)}); start it or set DATABASE_URL`,
      );
    }
    return { url: undefined, source: `${redactUrl(url)} does not answer (${reason(err)})` };
  }
}
