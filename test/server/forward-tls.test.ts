// Forwarding to a GLPI endpoint over https that demands a client certificate (as GLPI can be set up
// behind a TLS-terminating web server): with --forward-glpi-cert/-key and the endpoint's CA
// (--forward-glpi-ca) every inventory arrives; without the client certificate, or without trusting
// the endpoint's CA, nothing is delivered, the rows stay in the outbox and the target's last error
// says why. Certificates are made for the test by openssl (Debian), a real TLS handshake on loopback.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import { inflateSync } from 'node:zlib';
import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { forwardOutbox } from '../../src/db/schema.js';
import { startForwarder, type ForwardConfig } from '../../src/runtime/glpi-forwarder.js';
import { silentLogger } from '../../src/server/logger.js';
import { forwardStatus, syncTargets, targetIdOf } from '../../src/server/services/forward-outbox.js';
import { createTestDatabase, dbKinds, type TestDatabase } from '../helpers/db.js';
import { until } from '../helpers/process.js';
import { seedAgentsAndStore } from '../helpers/store-seed.js';

/** A CA, a server certificate for 127.0.0.1 and a client certificate, all signed by the CA (PEM). */
function makePki(dir: string): {
  ca: string;
  serverKey: string;
  serverCert: string;
  clientKey: string;
  clientCert: string;
  otherCa: string;
} {
  const ssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  const ca = (name: string) =>
    ssl(
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-days',
      '2',
      '-subj',
      `/CN=${name}`,
      '-keyout',
      `${name}.key`,
      '-out',
      `${name}.crt`,
    );
  const leaf = (name: string) => {
    ssl(
      'req',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-subj',
      `/CN=${name}`,
      '-keyout',
      `${name}.key`,
      '-out',
      `${name}.csr`,
    );
    ssl(
      'x509',
      '-req',
      '-in',
      `${name}.csr`,
      '-CA',
      'ca.crt',
      '-CAkey',
      'ca.key',
      '-CAcreateserial',
      '-days',
      '2',
      '-extfile',
      `${name}.ext`,
      '-out',
      `${name}.crt`,
    );
  };
  ca('ca');
  ca('other');
  execFileSync(
    'sh',
    [
      '-c',
      'printf "subjectAltName=IP:127.0.0.1\\nextendedKeyUsage=serverAuth\\n" > server.ext; printf "extendedKeyUsage=clientAuth\\n" > client.ext',
    ],
    { cwd: dir },
  );
  leaf('server');
  leaf('client');
  const read = (f: string) => readFileSync(join(dir, f), 'utf8');
  return {
    ca: read('ca.crt'),
    serverKey: read('server.key'),
    serverCert: read('server.crt'),
    clientKey: read('client.key'),
    clientCert: read('client.crt'),
    otherCa: read('other.crt'),
  };
}

const dir = mkdtempSync(join(tmpdir(), 'latchkey-forward-tls-'));
let pki: ReturnType<typeof makePki>;
let receiver: Server;
let url: string;
const received: { agent: string; deviceid: string; client: string }[] = [];

beforeAll(async () => {
  pki = makePki(dir);
  receiver = createServer(
    { key: pki.serverKey, cert: pki.serverCert, ca: pki.ca, requestCert: true, rejectUnauthorized: true },
    (req: IncomingMessage, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const body = JSON.parse(inflateSync(Buffer.concat(chunks)).toString('utf8')) as { deviceid: string };
        const client = (req.socket as TLSSocket).getPeerCertificate().subject?.CN ?? '';
        received.push({ agent: String(req.headers['glpi-agent-id']), deviceid: body.deviceid, client: String(client) });
        res.writeHead(200, { 'content-type': 'application/json' }).end('{"status":"ok"}');
      });
    },
  );
  await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
  url = `https://127.0.0.1:${(receiver.address() as AddressInfo).port}/front/inventory.php`;
});

afterAll(() => {
  receiver?.close();
  rmSync(dir, { recursive: true, force: true });
});

/** One agent with `n` stored inventories, written by the storing statement (which fills the outbox). */
async function storeInventories(database: TestDatabase, agentId: string, n: number): Promise<void> {
  // The storing statement writes an outbox row per active target: the target comes first.
  await syncTargets(database.db, [{ id: targetIdOf(new URL(url)), url }], Date.now());
  await (
    await seedAgentsAndStore(database, [agentId])
  )(agentId, n);
}

const backlog = async (database: TestDatabase) => (await database.db.select({ c: sql<number>`count(*)::int` }).from(forwardOutbox))[0]!.c;

describe.each(dbKinds)('forwarding to a GLPI endpoint that demands a client certificate, on %s', (kind) => {
  let database: TestDatabase;
  beforeAll(async () => {
    database = await createTestDatabase(kind);
  });
  afterAll(async () => {
    await database?.dispose();
  });
  const config = (tls: Partial<ForwardConfig>): ForwardConfig => ({
    urls: [url],
    compression: 'zlib',
    retryMaxMs: 200,
    pollMs: 50,
    timeoutMs: 5000,
    ...tls,
  });

  it('refuses to deliver without the client certificate, or to an endpoint whose CA is not trusted, and says why', async () => {
    await storeInventories(database, `tls-${kind}`, 3);
    for (const [tls, why] of [
      [{ ca: pki.ca }, /^TLS handshake failed: ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED$/],
      [{ cert: pki.clientCert, key: pki.clientKey, ca: pki.otherCa }, /^TLS handshake failed: [A-Z_]*(CERT|SIGNATURE)/],
    ] as const) {
      const f = await startForwarder(database, config(tls), silentLogger);
      try {
        await until(
          'the failure to be recorded',
          async () => (await forwardStatus(database.db, Date.now())).some((t) => t.lastError !== null) || undefined,
          { timeoutMs: 20_000, everyMs: 50 },
        );
      } finally {
        await f.stop();
      }
      const [t] = await forwardStatus(database.db, Date.now());
      expect(t!.lastError).toMatch(why);
      expect(await backlog(database)).toBe(3);
      // Reset the recorded error so the next case shows its own.
      await database.db.execute(sql`UPDATE forward_targets SET last_error = NULL`);
    }
    expect(received.filter((r) => r.deviceid.startsWith(`tls-${kind}-`))).toEqual([]);
  });

  it('delivers every inventory, in order, with the client certificate and the endpoint CA', async () => {
    const f = await startForwarder(database, config({ cert: pki.clientCert, key: pki.clientKey, ca: pki.ca }), silentLogger);
    try {
      await until('every row delivered', async () => (await backlog(database)) === 0 || undefined, { timeoutMs: 20_000, everyMs: 50 });
    } finally {
      await f.stop();
    }
    const mine = received.filter((r) => r.deviceid.startsWith(`tls-${kind}-`));
    expect(mine.map((r) => r.deviceid)).toEqual([1, 2, 3].map((c) => `tls-${kind}-${c}`));
    expect(new Set(mine.map((r) => r.client))).toEqual(new Set(['client']));
    const [t] = await forwardStatus(database.db, Date.now());
    expect(t!.deliveredTotal).toBe(3);
  });
});
