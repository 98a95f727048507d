// The legacy bridge end to end with real processes (spec §11.2, README "Migrating a GLPI fleet"):
// `latchkey serve --forward-glpi` in front of the real GLPI-Agent proxy receiver, one `latchkey relay
// serve --legacy-listen [::]:0 --legacy-trust 127.0.0.1/32`, and two real legacy agents run through it:
// the vendored GLPI-Agent (PROLOG → JSON protocol, zlib) and the Debian FusionInventory-Agent 2.6
// (XML PROLOG and inventory, zlib). Both complete their run without an error in their logs; the server
// stores their inventories under their legacy identities (XML as sent, with its GLPI JSON mapping);
// both reach the GLPI receiver as stored; a source outside the trust ([::1]) is refused; an enrolled
// agent that is not a relay cannot submit legacy-origin content. (Adoption: test/relay/legacy-ingest.test.ts.)
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { mkdir, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadState, nextCounter } from '../../src/agent/state.js';
import { sealEnvelope } from '../../src/protocol/envelope.js';
import { LEGACY_CONTENT_TYPE, legacyAgentId, serializeLegacyOrigin } from '../../src/protocol/legacy.js';
import { selectCrypto } from '../../src/runtime/crypto.js';
import { randomBytes } from 'node:crypto';
import { CLI, cleanEnv, enrollWithCli, runCli, startServe, until, type ServeProcess } from '../helpers/process.js';
import { ensureGlpiAgentDeps, freePort, GLPI_AGENT_DIR, startGlpiReceiver, type GlpiReceiver } from '../helpers/glpi-receiver.js';

/** This file's waits: real processes, the legacy agents among them, take their time. */
const waitFor = <T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 120_000): Promise<T> =>
  until(what, probe, { timeoutMs });

/** Runs a command to its end; resolves with its exit code and output. */
async function run(cmd: string, args: string[], cwd: string): Promise<{ code: number | null; out: string }> {
  const child = spawn(cmd, args, { cwd, env: cleanEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  const [code] = (await once(child, 'exit')) as [number | null];
  return { code, out };
}

interface Entry {
  agentId: string;
  agentName: string;
  messageId: string;
  inventory: { deviceid: string; content: Record<string, Record<string, unknown>> };
  legacy?: { id: string; protocol: string; cty: string };
  raw?: string;
  path: { name: string }[];
}

describe('the legacy bridge, with real GLPI-Agent and FusionInventory-Agent runs', { timeout: 600_000 }, () => {
  let dir: string;
  let server: ServeProcess;
  let receiver: GlpiReceiver;
  let relay: ReturnType<typeof spawn>;
  let relayOut = '';
  let legacyPort: string;
  let relayUrl: string;
  let env: Record<string, string>;

  beforeAll(async () => {
    ensureGlpiAgentDeps();
    if (spawnSync('fusioninventory-agent', ['--version'], { stdio: 'ignore' }).status !== 0)
      spawnSync('apt-get', ['install', '-y', '-o', 'DPkg::Lock::Timeout=600', 'fusioninventory-agent'], { stdio: 'ignore' });
    dir = await mkdtemp(join(tmpdir(), 'latchkey-legacy-'));
    const port = await freePort();
    receiver = await startGlpiReceiver(join(dir, 'receiver'), port);
    const data = join(dir, 'data');
    server = await startServe(['--data-dir', data, '--forward-glpi', `http://127.0.0.1:${port}/proxy/glpi`, '--forward-retry-max', '2s']);
    env = { LATCHKEY_SERVER: server.url, LATCHKEY_DATA_DIR: data };
    const created = await runCli(['token', 'create', '--role', 'relay', '--json'], env);
    expect(created.code, created.stderr).toBe(0);
    relay = spawn(
      process.execPath,
      [
        CLI,
        'relay',
        'serve',
        '--listen',
        '127.0.0.1:0',
        '--upstream',
        server.url,
        '--state-dir',
        join(dir, 'relay'),
        '--token',
        (JSON.parse(created.stdout) as { token: string }).token,
        '--legacy-listen',
        '[::]:0',
        '--legacy-trust',
        '127.0.0.1/32',
        '--receipt-wait',
        '0s',
      ],
      { env: cleanEnv(), stdio: ['ignore', 'pipe', 'pipe'] },
    );
    relay.stdout!.on('data', (d: Buffer) => (relayOut += d.toString()));
    relay.stderr!.on('data', (d: Buffer) => (relayOut += d.toString()));
    [, relayUrl, legacyPort] = await waitFor('the relay listening', async () => {
      if (relay.exitCode !== null) throw new Error(`relay exited: ${relayOut}`);
      const m = /latchkey relay listening on (\S+)\n[\s\S]*legacy listener on http:\/\/\[::\]:(\d+)/.exec(relayOut);
      return m ? (m as unknown as [string, string, string]) : undefined;
    });
  }, 300_000);

  afterAll(async () => {
    if (relay && relay.exitCode === null) {
      relay.kill('SIGTERM');
      await once(relay, 'exit');
    }
    await server?.stop();
    await receiver?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('takes both agents through their whole run, stores them under their legacy ids, and forwards them to GLPI', async () => {
    const url = `http://127.0.0.1:${legacyPort}/`;
    const empty = join(dir, 'empty.cfg');
    await writeFile(empty, '');
    const glpiVar = join(dir, 'glpi-var');
    await mkdir(glpiVar);
    // Both agents name themselves hostname + the second of their first run: started in the same second
    // on one machine they would share a deviceid (and the GLPI receiver's one file for it). FusionInventory
    // starts once GLPI-Agent has saved its identity, in a later second.
    const glpiRun = run(
      'perl',
      [
        '-Ilib',
        'bin/glpi-agent',
        '--server',
        url,
        '--tasks=inventory',
        '--force',
        '--no-httpd',
        '--logger=stderr',
        `--vardir=${glpiVar}`,
        `--conf-file=${empty}`,
        '--no-category=environment,process,software',
      ],
      GLPI_AGENT_DIR,
    );
    await waitFor('GLPI-Agent saved its deviceid', async () =>
      (await stat(join(glpiVar, 'GLPI-Agent.dump')).catch(() => undefined)) ? true : undefined,
    );
    await new Promise((r) => setTimeout(r, 1050 - (Date.now() % 1000)));
    const fusionRun = run(
      'fusioninventory-agent',
      [
        '--server',
        `${url}ocsinventory`,
        '--tasks=inventory',
        '--force',
        '--no-httpd',
        '--logger=stderr',
        `--conf-file=${empty}`,
        '--no-category=environment,process,software',
      ],
      dir,
    );
    const [glpi, fusion] = await Promise.all([glpiRun, fusionRun]);
    expect(glpi.code, glpi.out).toBe(0);
    expect(glpi.out).toContain('answer shows it supports GLPI Agent protocol');
    expect(glpi.out).not.toMatch(/\[error\]/);
    expect(fusion.code, fusion.out).toBe(0);
    expect(fusion.out).toContain('sending prolog request');
    expect(fusion.out).not.toMatch(/\[error\]/);

    const exported = await waitFor('both legacy inventories stored', async () => {
      const r = await runCli(['inventory', 'export', '--format', 'ndjson'], env);
      expect(r.code, r.stderr).toBe(0);
      const lines = r.stdout.trim()
        ? r.stdout
            .trim()
            .split('\n')
            .map((l) => JSON.parse(l) as Entry)
        : [];
      return lines.length >= 2 ? lines : undefined;
    });
    expect(exported).toHaveLength(2);
    const byProtocol = Object.fromEntries(exported.map((e) => [e.legacy?.protocol, e]));
    const g = byProtocol['glpi-json']!;
    const f = byProtocol['fusion-xml']!;
    // Each under its own legacy agent: GLPI-Agent by its GLPI-Agent-ID (a UUID), FusionInventory by DEVICEID.
    expect(g.legacy!.id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
    expect(g.agentId).toBe(legacyAgentId(g.legacy!.id));
    expect(g.legacy!.cty).toBe('application/json');
    expect(g.raw).toBeUndefined();
    expect(f.legacy!.id).toBe(f.inventory.deviceid);
    expect(f.agentId).toBe(legacyAgentId(f.legacy!.id));
    expect(f.legacy!.cty).toBe('application/xml');
    expect(f.raw).toMatch(/^<\?xml[\s\S]*<QUERY>INVENTORY<\/QUERY>/);
    // The XML's mapping: hardware name and OS as the agent reported them.
    const hostname = /<NAME>([^<]+)<\/NAME>\s*<OSCOMMENTS>/.exec(f.raw!)?.[1];
    expect(f.inventory.content.hardware!.name).toBe(hostname);
    expect(f.inventory.content.operatingsystem!.full_name).toBe(/<FULL_NAME>([^<]+)<\/FULL_NAME>/.exec(f.raw!)?.[1]);
    // The relay is the path, as for any relayed message.
    expect(g.path).toHaveLength(1);

    // Admins see and filter them.
    const listed = await runCli(['agents', 'list', '--kind', 'legacy', '--json'], env);
    expect(listed.code, listed.stderr).toBe(0);
    const legacyAgents = JSON.parse(listed.stdout) as { id: string; kind: string; legacy: { id: string; protocol: string } }[];
    expect(legacyAgents.map((a) => a.id).sort()).toEqual([g.agentId, f.agentId].sort());
    expect(legacyAgents.every((a) => a.kind === 'legacy')).toBe(true);
    const enrolled = JSON.parse((await runCli(['agents', 'list', '--kind', 'enrolled', '--json'], env)).stdout) as { role: string }[];
    expect(enrolled.map((a) => a.role)).toEqual(['relay']);

    // Both reach GLPI exactly as stored (the receiver files them by deviceid).
    for (const e of [g, f]) expect(await receiver.received([e.inventory.deviceid], 120_000)).toEqual([e.inventory]);
    expect(relayOut).not.toMatch(/"level":(50|60)/);
  });

  it('refuses a source outside --legacy-trust with source_not_allowed, and counts it', async () => {
    const res = await fetch(`http://[::1]:${legacyPort}/`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{"action":"contact","deviceid":"outsider"}',
    });
    expect(res.status).toBe(403);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe('source_not_allowed');
    const metrics = await (await fetch(`${relayUrl}/metrics`)).text();
    expect(metrics).toMatch(/latchkey_relay_legacy_requests_total\{outcome="refused",label="source_not_allowed"\} [1-9]/);
    expect(relayOut).toContain('relay legacy listener: request refused');
  });

  it('refuses legacy-origin content from an enrolled agent that is not a relay (relay_not_authorized, signed)', async () => {
    const created = await runCli(['token', 'create', '--json'], env);
    const state = join(dir, 'agent');
    await enrollWithCli(server.url, JSON.parse(created.stdout).token, state);
    const crypto = await selectCrypto();
    const ctx = { crypto, random: (n: number) => new Uint8Array(randomBytes(n)), now: () => Date.now() };
    const s = await loadState(crypto, state);
    const content = serializeLegacyOrigin({
      id: 'forged-pc',
      protocol: 'glpi-json',
      cty: 'application/json',
      body: new TextEncoder().encode('{"deviceid":"forged-pc","content":{"versionclient":"x"}}'),
    });
    const { envelope } = await sealEnvelope(ctx, {
      sender: s.keys,
      recipient: s.server.agreement,
      type: 'inventory',
      contentType: LEGACY_CONTENT_TYPE,
      contentEncoding: 'gzip',
      counter: await nextCounter(state, Date.now()),
      plaintext: gzipSync(content),
      credential: s.agent.credential,
    });
    const res = await fetch(`${server.url}/v1/messages`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(envelope),
    });
    expect(res.status).toBe(403);
    const body = (await res.json()) as { error: { code: string }; receipt?: unknown };
    expect(body.error.code).toBe('relay_not_authorized');
    expect(body.receipt).toBeDefined();
    const forged = await runCli(['agents', 'show', legacyAgentId('forged-pc'), '--json'], env);
    expect(forged.code).not.toBe(0);
  });
});
