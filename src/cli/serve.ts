// `latchkey serve` and `latchkey migrate`.
import { availableParallelism } from 'node:os';
import { resolve } from 'node:path';
import { Option, type Command } from 'commander';
import type { ServeConfig } from '../runtime/config.js';
import { CRYPTO_ALIASES, CRYPTO_CHOICES, cryptoChoice } from '../runtime/crypto.js';
import { parseListenAddress } from '../runtime/metrics-listener.js';
import { parseTrustedProxies } from '../server/client-address.js';
import { parseKeySourceSpec } from '../runtime/key-source-spec.js';
import { MAX_CREDENTIAL_TTL_SECONDS, MAX_RENEW_OVERLAP_SECONDS, MIN_CREDENTIAL_TTL_SECONDS } from '../server/lifetimes.js';
import { parseDurationIn } from './admin-options.js';
import { CliError } from './run.js';

function parsePort(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new CliError('usage', `invalid port: ${JSON.stringify(value)}`, 2);
  return n;
}

function parseListen(value: string): { host: string; port: number } {
  const address = parseListenAddress(value);
  if (!address) throw new CliError('usage', `--metrics-listen takes HOST:PORT (or [IPv6]:PORT), got ${JSON.stringify(value)}`, 2);
  return address;
}

function positiveInt(flag: string) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < 1) throw new CliError('usage', `${flag} must be a positive integer`, 2);
    return n;
  };
}

/** A repeatable flag's values (the environment gives one space-separated string). */
function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

function words(value: string | number | boolean | string[] | undefined): string[] {
  if (value === undefined) return [];
  return (Array.isArray(value) ? value : [String(value)]).flatMap((v) => v.split(/\s+/)).filter(Boolean);
}

/** `--key-request` values: at most one program and one socket, absolute paths. */
function keyRequestSources(values: string[], timeoutSeconds: number): ServeConfig['keyRequest'] {
  if (values.length === 0) return undefined;
  const out: NonNullable<ServeConfig['keyRequest']> = { timeoutMs: timeoutSeconds * 1000 };
  for (const v of values) {
    const spec = parseKeySourceSpec(v);
    if (!spec) throw new CliError('usage', `--key-request takes exec:/ABSOLUTE/PATH or socket:/ABSOLUTE/PATH, got ${JSON.stringify(v)}`, 2);
    if (out[spec.kind]) throw new CliError('usage', `--key-request: one ${spec.kind} source at most`, 2);
    out[spec.kind] = spec.path;
  }
  return out;
}

function optional(value: string | number | boolean | string[] | undefined): string | undefined {
  return value === undefined || value === '' ? undefined : String(value);
}

/**
 * `--workers` / LATCHKEY_WORKERS: one per CPU by default on PostgreSQL. The embedded PGlite database
 * belongs to one process, so it serves with 1, and asking it for more is refused (not quietly lowered).
 */
function workerCount(given: unknown, databaseUrl: string | undefined): number {
  if (given === undefined || given === '') return databaseUrl ? availableParallelism() : 1;
  const n = typeof given === 'number' ? given : positiveInt('--workers')(String(given));
  if (n > 1 && !databaseUrl)
    throw new CliError(
      'usage',
      `--workers ${n} needs PostgreSQL (--database-url or DATABASE_URL): the embedded PGlite database belongs to one process`,
      2,
    );
  return n;
}

export function registerServe(program: Command): void {
  program
    .command('serve')
    .description('Run the Latchkey server (embedded PGlite unless a database URL is given).')
    .addOption(new Option('--host <host>', 'address to listen on').env('HOST').default('127.0.0.1'))
    .addOption(new Option('--port <port>', 'port to listen on (0 picks a free one)').env('PORT').default(8080).argParser(parsePort))
    .addOption(
      new Option('--data-dir <dir>', 'identity, bootstrap admin credential and embedded database')
        .env('LATCHKEY_DATA_DIR')
        .default('./.latchkey'),
    )
    .addOption(new Option('--database-url <url>', 'PostgreSQL URL; embedded PGlite when absent').env('DATABASE_URL'))
    .addOption(
      new Option('--identity <secret>', 'server identity given as a secret (see `latchkey identity generate`)')
        .env('LATCHKEY_IDENTITY')
        .hideHelp(),
    )
    .addOption(
      new Option('--identity-file <path>', 'read the server identity from this file instead of <data-dir>/identity.key').env(
        'LATCHKEY_IDENTITY_FILE',
      ),
    )
    .addOption(
      new Option(
        '--previous-identity <secrets>',
        'previous server identities still accepted during a key rotation, space-separated secrets',
      )
        .env('LATCHKEY_PREVIOUS_IDENTITY')
        .hideHelp(),
    )
    .addOption(
      new Option('--previous-identity-file <path>', 'a previous server identity still accepted during a key rotation (repeatable)')
        .env('LATCHKEY_PREVIOUS_IDENTITY_FILE')
        .argParser(collect),
    )
    .addOption(
      new Option('--next-identity <secret>', 'the next server identity, accepted before it is announced')
        .env('LATCHKEY_NEXT_IDENTITY')
        .hideHelp(),
    )
    .addOption(
      new Option('--next-identity-file <path>', 'read the next server identity (accepted before it is announced) from this file').env(
        'LATCHKEY_NEXT_IDENTITY_FILE',
      ),
    )
    .addOption(
      new Option('--log-level <level>', 'log level').env('LOG_LEVEL').default('info').choices(['debug', 'info', 'warn', 'error', 'silent']),
    )
    .addOption(
      new Option('--crypto <backend>', 'primitive backend: node (node:crypto), webcrypto, noble (pure JS); native is the old name of node')
        .env('LATCHKEY_CRYPTO')
        .choices([...CRYPTO_CHOICES, ...Object.keys(CRYPTO_ALIASES)]),
    )
    .addOption(
      new Option('--retention-days <days>', 'drop stored inventories older than this')
        .env('LATCHKEY_RETENTION_DAYS')
        .default(90)
        .argParser(positiveInt('--retention-days')),
    )
    .addOption(
      new Option('--retention-per-agent <n>', 'keep at most this many inventories per agent')
        .env('LATCHKEY_RETENTION_PER_AGENT')
        .default(1000)
        .argParser(positiveInt('--retention-per-agent')),
    )
    .addOption(new Option('--metrics-token <token>', 'require this bearer token on GET /metrics').env('LATCHKEY_METRICS_TOKEN'))
    .addOption(
      new Option('--metrics-listen <host:port>', 'serve /metrics on this address instead of the main port').env('LATCHKEY_METRICS_LISTEN'),
    )
    .addOption(
      new Option('--credential-ttl <duration>', 'lifetime of agent keys and credentials, unless their token says otherwise (1h to 3660d)')
        .env('LATCHKEY_CREDENTIAL_TTL')
        .default(parseDurationIn('--credential-ttl', MIN_CREDENTIAL_TTL_SECONDS, MAX_CREDENTIAL_TTL_SECONDS)('30d'), '30d')
        .argParser(parseDurationIn('--credential-ttl', MIN_CREDENTIAL_TTL_SECONDS, MAX_CREDENTIAL_TTL_SECONDS)),
    )
    .addOption(
      new Option('--renew-overlap <duration>', 'how long a key replaced by a renewal is still accepted (0s to 7d)')
        .env('LATCHKEY_RENEW_OVERLAP')
        .default(parseDurationIn('--renew-overlap', 0, MAX_RENEW_OVERLAP_SECONDS)('10m'), '10m')
        .argParser(parseDurationIn('--renew-overlap', 0, MAX_RENEW_OVERLAP_SECONDS)),
    )
    .addOption(
      new Option(
        '--trust-proxy <cidr>',
        'a reverse proxy (address or CIDR) whose X-Forwarded-For / Forwarded names the client (repeatable)',
      )
        .env('LATCHKEY_TRUST_PROXY')
        .argParser(collect),
    )
    .addOption(new Option('--tls-cert <file>', 'serve HTTPS with this PEM certificate chain (reloaded on SIGHUP)').env('LATCHKEY_TLS_CERT'))
    .addOption(new Option('--tls-key <file>', 'the PEM private key of --tls-cert (reloaded on SIGHUP)').env('LATCHKEY_TLS_KEY'))
    .addOption(
      new Option(
        '--key-request <source>',
        'ask this key source about unknown agents on first contact: exec:PATH (a program) or socket:PATH (a Unix socket); give both to fall back from the socket to the program',
      )
        .env('LATCHKEY_KEY_REQUEST')
        .argParser(collect),
    )
    .addOption(
      new Option('--key-request-timeout <duration>', 'deadline of one key source question (1s to 60s)')
        .env('LATCHKEY_KEY_REQUEST_TIMEOUT')
        .default(2)
        .argParser(parseDurationIn('--key-request-timeout', 1, 60)),
    )
    .addOption(
      new Option(
        '--forward-glpi <url>',
        'forward every stored inventory to this GLPI inventory endpoint (repeatable; user:password@ in the URL for basic auth)',
      )
        .env('LATCHKEY_FORWARD_GLPI')
        .argParser(collect),
    )
    .addOption(
      new Option('--forward-glpi-cert <file>', 'client certificate (PEM) presented to https GLPI targets').env(
        'LATCHKEY_FORWARD_GLPI_CERT',
      ),
    )
    .addOption(new Option('--forward-glpi-key <file>', 'private key (PEM) of --forward-glpi-cert').env('LATCHKEY_FORWARD_GLPI_KEY'))
    .addOption(
      new Option('--forward-glpi-ca <file>', 'CA certificates (PEM) to trust for https GLPI targets, besides the system ones').env(
        'LATCHKEY_FORWARD_GLPI_CA',
      ),
    )
    .addOption(
      new Option('--forward-glpi-compression <kind>', 'body encoding sent to GLPI')
        .env('LATCHKEY_FORWARD_GLPI_COMPRESSION')
        .choices(['zlib', 'gzip', 'none'])
        .default('zlib'),
    )
    .addOption(
      new Option('--forward-retry-max <duration>', 'longest wait between two delivery attempts of one inventory (1s to 1d)')
        .env('LATCHKEY_FORWARD_RETRY_MAX')
        .default(600, '10m')
        .argParser(parseDurationIn('--forward-retry-max', 1, 86400)),
    )
    .addOption(
      new Option('--workers <n>', 'processes serving the port (default: one per CPU with PostgreSQL; 1, the only choice, with PGlite)')
        .env('LATCHKEY_WORKERS')
        // An empty variable is an unset one (the default applies), as for the other settings.
        .argParser((v: string) => (v === '' ? undefined : positiveInt('--workers')(v))),
    )
    .addOption(
      new Option(
        '--trust-forwarded-proto',
        "behind a TLS-terminating proxy: believe its X-Forwarded-Proto (the console's Secure cookie and Origin check)",
      ).env('LATCHKEY_TRUST_FORWARDED_PROTO'),
    )
    .action(async (opts: Record<string, string | number | boolean | string[] | undefined>) => {
      const trustProxy = words(opts.trustProxy);
      const bad = parseTrustedProxies(trustProxy);
      if ('invalid' in bad) throw new CliError('usage', `--trust-proxy takes addresses or CIDRs, got ${JSON.stringify(bad.invalid)}`, 2);
      const tlsCert = opts.tlsCert === undefined || opts.tlsCert === '' ? undefined : resolve(String(opts.tlsCert));
      const tlsKey = opts.tlsKey === undefined || opts.tlsKey === '' ? undefined : resolve(String(opts.tlsKey));
      if ((tlsCert === undefined) !== (tlsKey === undefined))
        throw new CliError('usage', 'give both --tls-cert and --tls-key, or neither', 2);
      const config: ServeConfig = {
        host: String(opts.host),
        port: typeof opts.port === 'number' ? opts.port : parsePort(String(opts.port)),
        dataDir: resolve(String(opts.dataDir)),
        databaseUrl: opts.databaseUrl === undefined || opts.databaseUrl === '' ? undefined : String(opts.databaseUrl),
        identity: opts.identity === undefined ? undefined : String(opts.identity),
        identityFile: opts.identityFile === undefined ? undefined : String(opts.identityFile),
        previousIdentities: words(opts.previousIdentity as string | string[] | undefined),
        previousIdentityFiles: words(opts.previousIdentityFile as string | string[] | undefined),
        nextIdentity: opts.nextIdentity === undefined || opts.nextIdentity === '' ? undefined : String(opts.nextIdentity),
        nextIdentityFile: opts.nextIdentityFile === undefined || opts.nextIdentityFile === '' ? undefined : String(opts.nextIdentityFile),
        logLevel: String(opts.logLevel),
        crypto: cryptoChoice(opts.crypto === undefined ? undefined : String(opts.crypto)),
        retentionDays: Number(opts.retentionDays),
        retentionPerAgent: Number(opts.retentionPerAgent),
        metricsToken: opts.metricsToken === undefined || opts.metricsToken === '' ? undefined : String(opts.metricsToken),
        metricsListen: opts.metricsListen === undefined || opts.metricsListen === '' ? undefined : parseListen(String(opts.metricsListen)),
        credentialTtlSeconds: Number(opts.credentialTtl),
        renewOverlapSeconds: Number(opts.renewOverlap),
        trustProxy,
        tlsCert,
        tlsKey,
        keyRequest: keyRequestSources(words(opts.keyRequest), Number(opts.keyRequestTimeout)),
        forward: {
          urls: words(opts.forwardGlpi),
          cert: optional(opts.forwardGlpiCert),
          key: optional(opts.forwardGlpiKey),
          ca: optional(opts.forwardGlpiCa),
          compression: String(opts.forwardGlpiCompression) as 'zlib' | 'gzip' | 'none',
          retryMaxSeconds: Number(opts.forwardRetryMax),
        },
        trustForwardedProto: opts.trustForwardedProto === true || opts.trustForwardedProto === 'true' || opts.trustForwardedProto === '1',
      };
      const workers = workerCount(opts.workers, config.databaseUrl);
      // Loaded here, not at the top: every other command starts without the server's modules.
      const { createLogger, handleSignals, startServer, StartupError } = await import('../runtime/node.js');
      const { DataDirLockedError } = await import('../runtime/data-dir-lock.js');
      const logger = createLogger(config.logLevel);
      try {
        if (workers > 1) {
          const { isWorker, runPrimary, runWorker } = await import('../runtime/cluster.js');
          if (isWorker()) return await runWorker(config, logger);
          const running = await runPrimary(config, workers, logger);
          const metricsLine = running.metricsUrl ? `metrics on ${running.metricsUrl}/metrics\n` : '';
          process.stdout.write(
            `latchkey listening on ${running.url}\nserver key fingerprint ${running.fingerprint}\n${metricsLine}workers ${workers}\n`,
          );
          return;
        }
        const running = await startServer(config, logger);
        // Before announcing readiness: a SIGTERM sent the moment the line appears must find the
        // graceful handler, not the default action (killed, no clean shutdown).
        handleSignals(running, logger);
        // The two lines a person starting the server wants; also in the JSON log.
        const metricsLine = running.metricsUrl ? `metrics on ${running.metricsUrl}/metrics\n` : '';
        process.stdout.write(`latchkey listening on ${running.url}\nserver key fingerprint ${running.fingerprint}\n${metricsLine}`);
      } catch (err) {
        if (err instanceof DataDirLockedError) throw new CliError('data_dir_locked', err.message);
        if (err instanceof StartupError) throw new CliError('startup_failed', err.message);
        throw err;
      }
    });

  program
    .command('migrate')
    .description('Apply database migrations and exit (the Worker does not migrate by itself).')
    .addOption(new Option('--database-url <url>', 'PostgreSQL URL').env('DATABASE_URL').makeOptionMandatory())
    .action(async (opts: { databaseUrl: string }) => {
      const { openDatabase } = await import('../db/client.js');
      const { applyMigrations } = await import('../db/migrate.js');
      const { readMigrations } = await import('../db/migrations-fs.js');
      const database = await openDatabase({ url: opts.databaseUrl }).catch(() => {
        throw new CliError('startup_failed', 'cannot connect to the database');
      });
      try {
        const applied = await applyMigrations(database, await readMigrations());
        process.stdout.write(applied.length ? `applied ${applied.join(', ')}\n` : 'database is up to date\n');
      } finally {
        await database.close();
      }
    });
}
