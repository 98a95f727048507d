// `latchkey relay serve | status`: a relay forwards sealed envelopes it cannot read (spec §11).
// The server-side modules (hono, prom-client) are imported inside the actions only.
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { Command } from 'commander';
import { parseListenAddress } from '../runtime/metrics-listener.js';
import { parseDuration } from './admin-options.js';
import { withProxyOption } from './proxy-option.js';
import { CliError } from './run.js';

const GIB = 1024 * 1024 * 1024;

function positiveInt(flag: string) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isSafeInteger(n) || n < 1) throw new CliError('usage', `${flag} must be a positive integer`, 2);
    return n;
  };
}

export function registerRelayCommands(program: Command): void {
  const relay = program.command('relay').description('Relay commands: serve agents where the server cannot reach them, status.');

  // --proxy (or HTTPS_PROXY / HTTP_PROXY / NO_PROXY): everything the relay sends upstream.
  withProxyOption(relay.command('serve'))
    .description('Enroll on first start (with --token), then accept, spool and forward sealed envelopes upstream.')
    .requiredOption('--listen <host:port>', 'address to serve agents on (port 0 picks a free one)')
    .requiredOption('--upstream <url>', 'the server, or another relay')
    .requiredOption('--state-dir <dir>', "the relay's identity, spool and receipts")
    .option('--token <token>', 'enrollment token (role relay), used on first start only')
    .option('--name <name>', 'name to enroll under')
    .option('--spool-max-bytes <n>', 'refuse (relay_full) rather than spool more than this', positiveInt('--spool-max-bytes'), GIB)
    .option('--receipt-wait <duration>', "how long to wait for the server's receipt before answering queued", '2s')
    .option('--revocation-interval <duration>', 'how often to poll the signed revocation list', '1m')
    .option('--log-level <level>', 'debug, info, warn, error, silent', process.env.LOG_LEVEL ?? 'info')
    .option(
      '--legacy-listen <host:port>',
      'also take plain inventories from GLPI, FusionInventory and OCS agents here (README "Migrating a GLPI fleet")',
    )
    .option(
      '--legacy-trust <cidr>',
      'a network whose legacy agents may use --legacy-listen (repeatable; none by default: nobody)',
      (v: string, prev: string[]) => [...prev, v],
      [] as string[],
    )
    .action(
      async (o: {
        listen: string;
        upstream: string;
        stateDir: string;
        token?: string;
        name?: string;
        spoolMaxBytes: number;
        receiptWait: string;
        revocationInterval: string;
        logLevel: string;
        legacyListen?: string;
        legacyTrust: string[];
      }) => {
        const address = parseListenAddress(o.listen);
        if (!address) throw new CliError('usage', `--listen takes HOST:PORT (or [IPv6]:PORT), got ${JSON.stringify(o.listen)}`, 2);
        const legacyListen = o.legacyListen === undefined ? undefined : parseListenAddress(o.legacyListen);
        if (o.legacyListen !== undefined && !legacyListen)
          throw new CliError('usage', `--legacy-listen takes HOST:PORT (or [IPv6]:PORT), got ${JSON.stringify(o.legacyListen)}`, 2);
        if (o.legacyTrust.length > 0 && !legacyListen) throw new CliError('usage', '--legacy-trust needs --legacy-listen', 2);
        const { parseCidr } = await import('../server/services/cidr.js');
        const legacyTrust = o.legacyTrust.map((t) => {
          const cidr = parseCidr(t);
          if (!cidr) throw new CliError('usage', `--legacy-trust takes a CIDR (e.g. 10.0.0.0/8), got ${JSON.stringify(t)}`, 2);
          return cidr;
        });
        try {
          new URL(o.upstream);
        } catch {
          throw new CliError('usage', '--upstream must be a URL', 2);
        }
        const { startRelay } = await import('../relay/node.js');
        const { StartupError } = await import('../runtime/startup-error.js');
        try {
          const running = await startRelay({
            host: address.host,
            port: address.port,
            upstream: o.upstream,
            stateDir: resolve(o.stateDir),
            token: o.token ?? process.env.LATCHKEY_TOKEN,
            name: o.name,
            spoolMaxBytes: o.spoolMaxBytes,
            receiptWaitMs: Math.round(parseDuration(o.receiptWait) * 1000),
            revocationIntervalMs: Math.max(1000, Math.round(parseDuration(o.revocationInterval) * 1000)),
            logLevel: o.logLevel,
            ...(legacyListen ? { legacyListen, legacyTrust } : {}),
          });
          let closing = false;
          const stop = () => {
            if (closing) return;
            closing = true;
            void running.close().then(() => process.exit(0));
          };
          process.once('SIGTERM', stop);
          process.once('SIGINT', stop);
          process.stdout.write(`latchkey relay listening on ${running.url}\n`);
          if (running.legacyUrl) process.stdout.write(`latchkey relay legacy listener on ${running.legacyUrl}\n`);
        } catch (err) {
          if (err instanceof StartupError) throw new CliError('startup_failed', err.message);
          throw err;
        }
      },
    );

  relay
    .command('status')
    .description("Spool depth and bytes, oldest envelope's age, and the running relay's counters.")
    .requiredOption('--state-dir <dir>', "the relay's state dir")
    .option('--json', 'machine-readable output')
    .action(async (o: { stateDir: string; json?: boolean }) => {
      const dir = resolve(o.stateDir);
      const { readSpoolStats } = await import('../relay/spool.js');
      const { loadRevocations } = await import('../agent/revocations.js');
      const stats = await readSpoolStats(dir);
      const held = await loadRevocations(dir).catch(() => undefined);
      const saved = await readFile(join(dir, 'relay-status.json'), 'utf8')
        .then((t) => JSON.parse(t) as { updatedAt: number; pid: number; upstream: string; counters: Record<string, unknown> })
        .catch(() => undefined);
      const now = Date.now();
      const out = {
        spool: {
          depth: stats.depth,
          bytes: stats.bytes,
          oldestAgeSeconds: stats.oldestRat === undefined ? null : Math.round((now - stats.oldestRat) / 1000),
          expired: stats.expired,
          refused: stats.refused,
        },
        revocations: held
          ? { version: held.version, ageSeconds: held.checkedAt === 0 ? null : Math.round((now - held.checkedAt) / 1000) }
          : null,
        upstream: saved?.upstream ?? null,
        countersUpdatedAt: saved ? new Date(saved.updatedAt).toISOString() : null,
        counters: saved?.counters ?? null,
      };
      if (o.json) return console.log(JSON.stringify(out, null, 2));
      const age = out.spool.oldestAgeSeconds === null ? 'empty' : `oldest ${out.spool.oldestAgeSeconds}s old`;
      console.log(`spool: ${out.spool.depth} envelopes, ${out.spool.bytes} bytes, ${age}`);
      console.log(`set aside: ${out.spool.expired} expired, ${out.spool.refused} refused by upstream`);
      const r = out.revocations;
      console.log(
        r && r.ageSeconds !== null
          ? `revocation list: version ${r.version}, verified ${r.ageSeconds}s ago`
          : 'revocation list: none verified yet',
      );
      if (saved) {
        console.log(`upstream: ${saved.upstream} (counters as of ${out.countersUpdatedAt})`);
        for (const [k, v] of Object.entries(saved.counters))
          console.log(`  ${k}: ${typeof v === 'object' ? JSON.stringify(v) : String(v)}`);
      } else console.log('counters: none yet (the relay has not run here)');
    });
}
