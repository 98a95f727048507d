// `latchkey admin bootstrap`: break-glass recovery of a full admin credential when the bootstrap one
// is lost. It needs direct access to the database (the same access that runs the server), not an
// admin credential; the new secret goes to a 0600 file, never to a log.
import { stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import { Option, type Command } from 'commander';
import { dataDirLayout } from '../runtime/config.js';
import { writeSecretFile } from '../node/fs-secure.js';
import { CliError } from './run.js';

interface BootstrapOptions {
  dataDir: string;
  databaseUrl?: string;
  revokeOthers?: boolean;
  out?: string;
  print?: boolean;
  json?: boolean;
}

export function registerAdminBootstrap(admin: Command): void {
  admin
    .command('bootstrap')
    .description(
      'Mint a new full-scope admin credential straight in the database (when the bootstrap one is lost). Stop a server on the embedded database first.',
    )
    .addOption(
      new Option('--data-dir <dir>', 'the server data dir (embedded database; where admin.token is written)')
        .env('LATCHKEY_DATA_DIR')
        .default('./.latchkey'),
    )
    .addOption(new Option('--database-url <url>', 'PostgreSQL URL; the embedded database in the data dir when absent').env('DATABASE_URL'))
    .option('--revoke-others', 'revoke every earlier bootstrap credential in the same transaction')
    .option('--out <file>', 'write the credential to this file (0600) instead of <data-dir>/admin.token')
    .option('--print', 'print the credential on stdout instead of writing a file (shown once)')
    .option('--json', 'machine-readable output')
    .action(async (o: BootstrapOptions) => {
      const dataDir = resolve(o.dataDir);
      const layout = dataDirLayout(dataDir);
      if (!o.databaseUrl) {
        // Never create an empty embedded database by mistake: recovery is for an existing server.
        const found = await stat(layout.embeddedDatabase).catch(() => undefined);
        if (!found?.isDirectory()) throw new CliError('not_found', `no embedded database in ${dataDir}; give --data-dir or --database-url`);
      }
      // Loaded here: the other admin commands are HTTP clients and start without the database modules.
      const { openDatabase } = await import('../db/client.js');
      const { applyMigrations } = await import('../db/migrate.js');
      const { readMigrations } = await import('../db/migrations-fs.js');
      const { recoverBootstrapAdmin } = await import('../runtime/bootstrap-admin.js');
      const { DataDirLockedError } = await import('../runtime/data-dir-lock.js');
      const { openEmbeddedDatabase } = await import('../runtime/embedded-database.js');
      // The embedded database is locked to one process: refused while a server runs on it.
      const opening = o.databaseUrl ? openDatabase({ url: o.databaseUrl }) : openEmbeddedDatabase(dataDir, 'latchkey admin bootstrap');
      const database = await opening.catch((err: unknown) => {
        if (err instanceof DataDirLockedError) throw new CliError('data_dir_locked', err.message);
        throw new CliError('startup_failed', 'cannot open the database');
      });
      try {
        await applyMigrations(database, await readMigrations());
        const made = await recoverBootstrapAdmin(database, { revokeOthers: o.revokeOthers ?? false, actor: 'cli:admin-bootstrap' });
        const file = o.print ? undefined : resolve(o.out ?? layout.adminToken);
        if (file) await writeSecretFile(file, `${made.credential}\n`);
        const summary = { id: made.id, revoked: made.revoked, ...(file ? { file } : { credential: made.credential }) };
        if (o.json) console.log(JSON.stringify(summary, null, 2));
        else if (file)
          console.log(
            `new admin credential ${made.id} written to ${file}${made.revoked.length ? `; revoked ${made.revoked.join(', ')}` : ''}`,
          );
        else
          console.log(
            `${made.credential}\n\nadmin credential ${made.id}; shown once${made.revoked.length ? `; revoked ${made.revoked.join(', ')}` : ''}`,
          );
      } finally {
        await database.close();
      }
    });
}
