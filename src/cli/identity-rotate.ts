// `latchkey identity rotate` (spec/PROTOCOL.md §14): makes the next server identity (0600), its
// `server-key-endorsement` signed by the current key (Ed25519 is deterministic), and stores the
// endorsement (public) in the database with an audit entry. No private key enters the database.
//   --data-dir DIR (default): the data dir's identity.key is current; the next identity is written
//     to identity.next.key; unless --stage, it is then promoted in the same run (single instance, the
//     server stopped: the data dir is locked while one runs): identity.key becomes the new identity
//     and the old one is added to identity.previous.key, still accepted until removed from there.
//   --identity-file F --out NEXT: for several instances given their identities as secrets; the next
//     identity goes to NEXT and is rolled out by the operator (spec §14, README).
// A rerun after a failure resumes: an existing next identity is reused, an endorsement stored again
// is a no-op, and the promotion's steps are each idempotent.
import { randomBytes } from 'node:crypto';
import { readFile, rm, stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import { Option, type Command } from 'commander';
import { openDatabase } from '../db/client.js';
import type { Database } from '../db/database.js';
import { applyMigrations } from '../db/migrate.js';
import { readMigrations } from '../db/migrations-fs.js';
import { writeSecretFile } from '../node/fs-secure.js';
import { ProtocolError } from '../protocol/errors.js';
import { endorseServerKeys } from '../protocol/server-key-endorsement.js';
import { dataDirLayout } from '../runtime/config.js';
import { selectCrypto } from '../runtime/crypto.js';
import { DataDirLockedError, lockDataDir, type DataDirLock } from '../runtime/data-dir-lock.js';
import { openEmbeddedDatabase } from '../runtime/embedded-database.js';
import { decodeIdentitySecret, generateIdentitySecret, IdentityFormatError, type ServerIdentity } from '../server/identity.js';
import { recordEndorsement } from '../server/services/server-keys.js';
import { CliError } from './run.js';

interface RotateOptions {
  dataDir: string;
  identityFile?: string;
  out?: string;
  databaseUrl?: string;
  stage?: boolean;
  json?: boolean;
}

export function registerIdentityRotate(identity: Command): void {
  identity
    .command('rotate')
    .description(
      'Make the next server identity and its endorsement by the current one (stored in the database). Stop a server on the same data dir first.',
    )
    .addOption(
      new Option('--data-dir <dir>', 'the server data dir (identity.key is current; embedded database)')
        .env('LATCHKEY_DATA_DIR')
        .default('./.latchkey'),
    )
    .addOption(new Option('--identity-file <path>', 'the current identity (instead of <data-dir>/identity.key); needs --out'))
    .addOption(new Option('--out <path>', 'where to write the next identity (0600) with --identity-file'))
    .addOption(new Option('--database-url <url>', 'PostgreSQL URL; the embedded database in the data dir when absent').env('DATABASE_URL'))
    .option('--stage', 'data dir: only write identity.next.key (accepted, not announced); a later run without --stage promotes it')
    .option('--json', 'machine-readable output')
    .action(async (o: RotateOptions) => {
      if (o.identityFile && !o.out) throw new CliError('usage', '--identity-file needs --out (where to write the next identity)', 2);
      if (o.out && !o.identityFile)
        throw new CliError('usage', '--out goes with --identity-file; with a data dir the next identity is identity.next.key', 2);
      const dataDir = resolve(o.dataDir);
      const layout = dataDirLayout(dataDir);
      const currentFile = o.identityFile ? resolve(o.identityFile) : layout.identity;
      const nextFile = o.out ? resolve(o.out) : layout.nextIdentity;
      const promote = !o.identityFile && !o.stage;
      if (!o.databaseUrl && !(await stat(layout.embeddedDatabase).catch(() => undefined))?.isDirectory()) {
        throw new CliError('not_found', `no embedded database in ${dataDir}; give --data-dir or --database-url`);
      }
      const crypto = await selectCrypto();
      // The data dir is locked for the whole run (a running server holds it): its identity files
      // are never changed under a server.
      let lock: DataDirLock | undefined;
      let database: Database;
      try {
        if (!o.identityFile && o.databaseUrl) lock = await lockDataDir(dataDir, 'latchkey identity rotate');
        database = o.databaseUrl
          ? await openDatabase({ url: o.databaseUrl })
          : await openEmbeddedDatabase(dataDir, 'latchkey identity rotate');
      } catch (err) {
        await lock?.release();
        if (err instanceof DataDirLockedError) throw new CliError('data_dir_locked', err.message);
        throw new CliError('startup_failed', 'cannot open the database');
      }
      try {
        const current = await readIdentity(crypto, currentFile);
        const next = await nextIdentity(crypto, nextFile);
        if (next.identity.fingerprint === current.fingerprint) throw new CliError('usage', `${nextFile} holds the current identity`, 2);
        const now = Date.now();
        const endorsement = await endorseServerKeys(
          crypto,
          { ...current.signing, fingerprint: current.fingerprint },
          { signing: next.identity.signing.publicKey, agreement: next.identity.agreement.publicKey },
          { notBefore: now, iat: now },
        );
        await applyMigrations(database, await readMigrations());
        let stored: 'stored' | 'exists';
        try {
          stored = await recordEndorsement(database.db, crypto, current, next.identity, endorsement, {
            at: new Date(now),
            actor: 'cli:identity-rotate',
          });
        } catch (err) {
          if (err instanceof ProtocolError) throw new CliError(err.code, err.message);
          throw err;
        }
        if (promote) {
          // Old identity into identity.previous.key first, then the new one becomes identity.key:
          // a crash between the two leaves the old identity current (and also listed as previous).
          const previous = await readFile(layout.previousIdentity, 'utf8').catch(() => '');
          const lines = previous
            .split('\n')
            .map((l) => l.trim())
            .filter(Boolean);
          const currentSecret = (await readFile(currentFile, 'utf8')).trim();
          if (!lines.includes(currentSecret)) await writeSecretFile(layout.previousIdentity, `${[...lines, currentSecret].join('\n')}\n`);
          await writeSecretFile(layout.identity, `${next.secret}\n`);
          await rm(nextFile, { force: true });
        }
        const summary = {
          from: current.fingerprint,
          to: next.identity.fingerprint,
          endorsement: stored,
          promoted: promote,
          ...(promote ? { identity: layout.identity, previous: layout.previousIdentity } : { next: nextFile }),
        };
        if (o.json) console.log(JSON.stringify(summary, null, 2));
        else if (promote)
          console.log(
            `server identity rotated: ${current.fingerprint} -> ${next.identity.fingerprint}\nthe previous identity stays accepted (${layout.previousIdentity}); start the server`,
          );
        else console.log(`next server identity ${next.identity.fingerprint} written to ${nextFile}, endorsed by ${current.fingerprint}`);
      } finally {
        await database.close();
        await lock?.release();
      }
    });
}

async function readIdentity(crypto: Awaited<ReturnType<typeof selectCrypto>>, file: string): Promise<ServerIdentity> {
  const text = await readFile(file, 'utf8').catch(() => {
    throw new CliError('not_found', `cannot read the server identity ${file}`);
  });
  try {
    return await decodeIdentitySecret(crypto, text);
  } catch (err) {
    if (err instanceof IdentityFormatError) throw new CliError('usage', `invalid server identity in ${file}: ${err.message}`, 2);
    throw err;
  }
}

/** The next identity: the one already in `file` (a resumed run), else a new one written there (0600, exclusively). */
async function nextIdentity(
  crypto: Awaited<ReturnType<typeof selectCrypto>>,
  file: string,
): Promise<{ identity: ServerIdentity; secret: string }> {
  const existing = await readFile(file, 'utf8').catch(() => undefined);
  if (existing !== undefined) return { identity: await readIdentity(crypto, file), secret: existing.trim() };
  const secret = await generateIdentitySecret((n) => new Uint8Array(randomBytes(n)));
  await writeSecretFile(file, `${secret}\n`, { exclusive: true });
  return { identity: await decodeIdentitySecret(crypto, secret), secret };
}
