// `latchkey serve` on the network (issue 14, deployment): HTTPS with --tls-cert/--tls-key, the pair
// reloaded on SIGHUP without dropping the listener (a bad pair keeps the old one), agents and the admin
// CLI trusting a private CA through NODE_EXTRA_CA_CERTS; --trust-proxy (here from LATCHKEY_TRUST_PROXY)
// behind a reverse proxy; the admin CLI's warning before a credential goes over plain HTTP. One real
// server process for the file.
import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from 'node:tls';
import { Agent, fetch as undiciFetch } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isLoopback } from '../../src/cli/admin-options.js';
import { runCli, startServe, type ServeProcess } from '../helpers/process.js';
import { startReverseProxy, type ReverseProxy } from '../helpers/reverse-proxy.js';

const inventory = new URL('../fixtures/glpi/format/computer_1.json', import.meta.url).pathname;

interface Pair {
  cert: string;
  key: string;
  fingerprint: string;
}

/** A self-signed P-256 certificate for 127.0.0.1 and localhost, made by the openssl CLI. */
async function selfSigned(dir: string, name: string): Promise<Pair> {
  const [cert, key] = [join(dir, `${name}.crt`), join(dir, `${name}.key`)];
  execFileSync('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '2',
    '-subj', `/CN=latchkey test ${name}`, '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost',
    '-keyout', key, '-out', cert,
  ], { stdio: 'ignore' }); // prettier-ignore
  return { cert, key, fingerprint: new X509Certificate(await readFile(cert)).fingerprint256 };
}

/** The fingerprint of the certificate the server presents to a new connection right now. */
function presented(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port, rejectUnauthorized: false }, () => {
      resolve(socket.getPeerCertificate().fingerprint256);
      socket.end();
    });
    socket.once('error', reject);
  });
}

async function until(check: () => Promise<boolean>, what: string): Promise<void> {
  for (let i = 0; i < 400; i++) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out waiting for ${what}`);
}

describe('latchkey serve with TLS and --trust-proxy', { timeout: 120_000 }, () => {
  let dir: string;
  let a: Pair;
  let b: Pair;
  /** The files the server reads (a copy of A at first). */
  let live: { cert: string; key: string };
  let bundle: string;
  let server: ServeProcess;
  let front: ReverseProxy;
  let port: number;
  const admin = () => ({ LATCHKEY_SERVER: server.url, LATCHKEY_DATA_DIR: join(dir, 'data'), NODE_EXTRA_CA_CERTS: bundle });

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'latchkey-servenet-'));
    [a, b] = await Promise.all([selfSigned(dir, 'a'), selfSigned(dir, 'b')]);
    live = { cert: join(dir, 'live.crt'), key: join(dir, 'live.key') };
    await writeFile(live.cert, await readFile(a.cert));
    await writeFile(live.key, await readFile(a.key));
    bundle = join(dir, 'bundle.pem');
    await writeFile(bundle, Buffer.concat([await readFile(a.cert), await readFile(b.cert)]));
    server = await startServe(['--data-dir', join(dir, 'data'), '--tls-cert', live.cert, '--tls-key', live.key], {
      LATCHKEY_TRUST_PROXY: '10.0.0.0/8 127.0.0.1',
    });
    port = Number(new URL(server.url).port);
    const ca = Buffer.concat([await readFile(a.cert), await readFile(b.cert)]);
    const dispatcher = new Agent({ connect: { ca } });
    front = await startReverseProxy(server.url, ((url: string, init: object) => undiciFetch(url, { ...init, dispatcher })) as typeof fetch);
  }, 120_000);
  afterAll(async () => {
    await front?.close();
    await server?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('serves HTTPS to agents and the admin CLI that trust its CA, and to nobody else', async () => {
    expect(server.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    const created = await runCli(['token', 'create', '--json'], admin());
    expect(created.code, created.stderr).toBe(0);
    expect(created.stderr).not.toContain('warning');
    const { token } = JSON.parse(created.stdout) as { token: string };

    const state = join(dir, 'agent');
    const untrusting = await runCli(['agent', 'enroll', '--server', server.url, '--token', token, '--state-dir', state]);
    expect(untrusting.stderr).toMatch(/^error: unreachable:/);
    const enrolled = await runCli(['agent', 'enroll', '--server', server.url, '--token', token, '--state-dir', state], {
      NODE_EXTRA_CA_CERTS: bundle,
    });
    expect(enrolled.code, enrolled.stderr).toBe(0);
    const sent = await runCli(['agent', 'send', '--state-dir', state, '--file', inventory], { NODE_EXTRA_CA_CERTS: bundle });
    expect(sent.code, sent.stderr).toBe(0);
  });

  it('reloads the certificate on SIGHUP on the same listener, and keeps the old one when the new files are bad', async () => {
    expect(await presented(port)).toBe(a.fingerprint);
    await writeFile(live.cert, await readFile(b.cert));
    await writeFile(live.key, await readFile(b.key));
    server.child.kill('SIGHUP');
    await until(async () => (await presented(port)) === b.fingerprint, 'certificate B');

    // A key that is not the certificate's: refused, B stays.
    await writeFile(live.key, await readFile(a.key));
    server.child.kill('SIGHUP');
    await until(async () => server.output().stdout.includes('TLS reload failed'), 'the reload error');
    expect(await presented(port)).toBe(b.fingerprint);
    expect(server.child.exitCode).toBeNull();
    expect(server.output().stdout).not.toContain('PRIVATE KEY');
    const listed = await runCli(['agents', 'list', '--json'], admin());
    expect(listed.code, listed.stderr).toBe(0);
  });

  it('takes the client address from a trusted reverse proxy (LATCHKEY_TRUST_PROXY)', async () => {
    const created = await runCli(['token', 'create', '--json', '--cidr', '203.0.113.0/24'], admin());
    const { token, id } = JSON.parse(created.stdout) as { token: string; id: string };
    front.headers = { 'x-forwarded-for': '198.51.100.1, 203.0.113.9' };
    // A name of its own: the first test's agent already holds this host's default name (the hostname).
    const enrolled = await runCli([
      'agent', 'enroll', '--server', front.url, '--token', token, '--state-dir', join(dir, 'behind'), '--name', 'behind-proxy',
    ]); // prettier-ignore
    expect(enrolled.code, enrolled.stderr).toBe(0);
    const tokens = JSON.parse((await runCli(['token', 'list', '--json'], admin())).stdout) as {
      id: string;
      uses: { sourceAddr: string }[];
    }[];
    expect(tokens.find((t) => t.id === id)?.uses.map((u) => u.sourceAddr)).toEqual(['203.0.113.9']);
  });

  it('refuses bad flags before starting; warns before sending an admin credential over plain HTTP', async () => {
    const badProxy = await runCli(['serve', '--port', '0', '--data-dir', join(dir, 'x'), '--trust-proxy', 'nope']);
    expect([badProxy.code, badProxy.stderr]).toEqual([2, expect.stringMatching(/^error: usage: --trust-proxy/)]);
    const half = await runCli(['serve', '--port', '0', '--data-dir', join(dir, 'x'), '--tls-cert', a.cert]);
    expect([half.code, half.stderr]).toEqual([2, expect.stringMatching(/^error: usage: give both --tls-cert and --tls-key/)]);
    const mismatch = await runCli(['serve', '--port', '0', '--data-dir', join(dir, 'x'), '--tls-cert', a.cert, '--tls-key', b.key]);
    expect(mismatch.stderr).toMatch(/^error: startup_failed: the TLS certificate and key are not a usable pair/);

    // A remote plain-HTTP server (reached through a proxy that is down, so nothing is sent anywhere).
    const plain = await runCli(['agents', 'list', '--server', 'http://203.0.113.5:8080', '--proxy', 'http://127.0.0.1:1'], {
      LATCHKEY_ADMIN_TOKEN: 'lka_not_a_real_one',
    });
    expect(plain.stderr).toMatch(/^warning: sending an admin credential over plain HTTP to 203\.0\.113\.5:8080/);
    expect(plain.stderr).not.toContain('lka_not_a_real_one');
    expect(plain.stderr).toMatch(/error: unreachable:/);
    for (const h of ['127.0.0.1', 'localhost', '[::1]', '127.1.2.3']) expect(isLoopback(h), h).toBe(true);
    for (const h of ['203.0.113.5', 'example.org', '[2001:db8::1]', '127.example.org']) expect(isLoopback(h), h).toBe(false);
  });
});
