// The real `latchkey` binary, issue 11's admin commands: `serve --credential-ttl/--renew-overlap`
// (and their range checks), `token create --credential-ttl`, `keys list [--agent ID|NAME]`,
// `keys revoke KID --reason`, `agents revoke NAME --reason`, `agents renew-now NAME`.
import { cp, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { describeEachDbSideBySide } from '../helpers/db.js';
import { createTempPostgresDatabase, type TempDatabase } from '../helpers/pg-database.js';
import { runCli, startServe, type ServeProcess } from '../helpers/process.js';

const inventory = new URL('../fixtures/glpi/format/computer_1_partial_memory.json', import.meta.url).pathname;
const HOUR = 3600_000;
// Each test runs a dozen real CLI processes: on a loaded 2-core machine that exceeds the default 30 s.
const CLI_TEST_TIMEOUT = 180_000;

interface KeyRow {
  sigKid: string;
  agentName: string;
  status: string;
  createdAt: string;
  expiresAt: string;
  replacedBy: string | null;
  revokedAt: string | null;
  revocationReason: string | null;
}

it(
  'serve refuses a credential lifetime or an overlap out of range, from a flag or the environment, with a usage error',
  async () => {
    const dir = await mkdtemp(join(tmpdir(), 'latchkey-keys-usage-'));
    try {
      for (const [args, env, why] of [
        [['--credential-ttl', '10m'], {}, /--credential-ttl must be between 1h and 3660d/],
        [['--credential-ttl', 'forever'], {}, /invalid duration/],
        [[], { LATCHKEY_CREDENTIAL_TTL: '4000d' }, /--credential-ttl must be between/],
        [['--renew-overlap', '8d'], {}, /--renew-overlap must be between 0s and 7d/],
        [[], { LATCHKEY_RENEW_OVERLAP: '-1m' }, /invalid duration/],
      ] as const) {
        const r = await runCli(['serve', '--port', '0', '--data-dir', join(dir, 'data'), ...args], env);
        expect(r.code, r.stderr).toBe(2);
        expect(r.stderr).toMatch(why);
      }
      const token = await runCli(['token', 'create', '--credential-ttl', '5m', '--server', 'http://127.0.0.1:9', '--data-dir', dir]);
      expect(token.code).toBe(2);
      expect(token.stderr).toMatch(/--credential-ttl must be between 1h and 3660d/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  },
  CLI_TEST_TIMEOUT,
);

describeEachDbSideBySide('agent keys CLI against a real server on %s', (kind) => {
  let dir: string;
  let server: ServeProcess;
  let pg: TempDatabase | undefined;
  let env: Record<string, string>;
  const cli = async (args: string[]) => {
    const r = await runCli(args, env);
    expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(0);
    return r.stdout;
  };
  const send = (state: string) => runCli(['agent', 'send', '--state-dir', state, '--file', inventory, '--json']);
  async function enroll(name: string, tokenArgs: string[] = []): Promise<string> {
    const { token } = JSON.parse(await cli(['token', 'create', '--json', ...tokenArgs])) as { token: string };
    const state = join(dir, name);
    const r = await runCli(['agent', 'enroll', '--server', server.url, '--token', token, '--state-dir', state, '--name', name, '--json']);
    expect(r.code, r.stderr).toBe(0);
    return state;
  }
  const keysOf = async (agent: string) => JSON.parse(await cli(['keys', 'list', '--agent', agent, '--json'])) as KeyRow[];
  const lifetime = (k: KeyRow) => Date.parse(k.expiresAt) - Date.parse(k.createdAt);

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'latchkey-keys-cli-'));
    if (kind === 'postgres') pg = await createTempPostgresDatabase();
    // Keys live 2 hours unless their token says otherwise; a renewed key is refused at once.
    server = await startServe(['--data-dir', join(dir, 'data'), '--credential-ttl', '2h'], {
      LATCHKEY_RENEW_OVERLAP: '0s',
      ...(pg ? { DATABASE_URL: pg.url } : {}),
    });
    env = { LATCHKEY_SERVER: server.url, LATCHKEY_DATA_DIR: join(dir, 'data') };
  }, CLI_TEST_TIMEOUT);
  afterAll(async () => {
    await server?.stop();
    await pg?.drop();
    await rm(dir, { recursive: true, force: true });
  });

  it(
    "credential lifetimes: the server's (--credential-ttl), a token's (--credential-ttl 7d), kept by renewals; --renew-overlap 0s ends the old key at once",
    async () => {
      const plain = await enroll(`cli-plain-${kind}`);
      const [k1] = await keysOf(`cli-plain-${kind}`);
      expect(lifetime(k1!)).toBeGreaterThan(2 * HOUR - 2000);
      expect(lifetime(k1!)).toBeLessThanOrEqual(2 * HOUR);

      const weekly = await enroll(`cli-weekly-${kind}`, ['--credential-ttl', '7d']);
      const [k2] = await keysOf(`cli-weekly-${kind}`);
      expect(lifetime(k2!)).toBeGreaterThan(7 * 24 * HOUR - 2000);
      const backup = `${weekly}.old`;
      await cp(weekly, backup, { recursive: true });
      const renewed = JSON.parse(await cli(['agent', 'renew', '--state-dir', weekly, '--json'])) as {
        keyId: string;
        previousKeyId: string;
      };
      const after = await keysOf(`cli-weekly-${kind}`);
      const fresh = after.find((k) => k.sigKid === renewed.keyId)!;
      expect(lifetime(fresh)).toBeGreaterThan(7 * 24 * HOUR - 2000);
      expect(after.find((k) => k.sigKid === renewed.previousKeyId)).toMatchObject({ status: 'expired', replacedBy: renewed.keyId });
      const old = await send(backup);
      expect(old.code).not.toBe(0);
      expect(old.stderr).toMatch(/key_expired/);
      expect(JSON.parse((await send(weekly)).stdout).status).toBe('accepted');
      expect(JSON.parse((await send(plain)).stdout).status).toBe('accepted');
    },
    CLI_TEST_TIMEOUT,
  );

  it(
    'keys revoke KID --reason, agents revoke NAME --reason: refused on the next send, listed with the reason; agents list shows a key-revoked agent as revoked',
    async () => {
      const name = `cli-revoke-${kind}`;
      const state = await enroll(name);
      const [key] = await keysOf(name);
      const noReason = await runCli(['keys', 'revoke', key!.sigKid], env);
      expect(noReason.code).not.toBe(0);
      expect(noReason.stderr).toMatch(/--reason/);
      expect(await cli(['keys', 'revoke', key!.sigKid, '--reason', 'disk image leaked'])).toMatch(/revoked key/);
      expect((await send(state)).stderr).toMatch(/key_revoked/);
      expect((await keysOf(name))[0]).toMatchObject({ sigKid: key!.sigKid, status: 'revoked', revocationReason: 'disk image leaked' });
      const listed = JSON.parse(await cli(['agents', 'list', '--json'])) as { name: string; status: string }[];
      expect(listed.find((a) => a.name === name)!.status).toBe('revoked');
      const table = await cli(['keys', 'list', '--agent', name]);
      expect(table).toMatch(/disk image leaked/);

      const other = `cli-revoke2-${kind}`;
      const otherState = await enroll(other);
      expect(await cli(['agents', 'revoke', other, '--reason', 'retired'])).toMatch(/revoked agent/);
      expect((await send(otherState)).stderr).toMatch(/agent_revoked/);
      expect((await keysOf(other))[0]!.revocationReason).toBe('retired');
      const audit = JSON.parse(await cli(['audit', '--json'])) as { action: string; details: Record<string, unknown> }[];
      expect(audit.find((e) => e.action === 'key.revoke')?.details.reason).toBe('disk image leaked');
      expect(audit.find((e) => e.action === 'agent.revoke')?.details.reason).toBe('retired');
      const unknown = await runCli(['keys', 'list', '--agent', 'nobody-by-this-name'], env);
      expect(unknown.code).not.toBe(0);
      expect(unknown.stderr).toMatch(/not_found/);
    },
    CLI_TEST_TIMEOUT,
  );

  it(
    'agents renew-now NAME: the next receipts carry renewNow until the agent renews',
    async () => {
      const name = `cli-renew-now-${kind}`;
      const state = await enroll(name);
      const directives = async () => (JSON.parse((await send(state)).stdout) as { directives: { renewNow?: boolean } | null }).directives;
      expect((await directives())?.renewNow).toBeUndefined();
      expect(await cli(['agents', 'renew-now', name])).toMatch(/asked to renew/);
      expect((await directives())?.renewNow).toBe(true);
      await cli(['agent', 'renew', '--state-dir', state]);
      expect((await directives())?.renewNow).toBeUndefined();
    },
    CLI_TEST_TIMEOUT,
  );
});
