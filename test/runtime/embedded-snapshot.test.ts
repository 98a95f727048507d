// The embedded database's first start (issue 14): an empty data dir gets the cluster `npm run build`
// made (dist/pglite-base.tar.gz), so a first start neither runs initdb nor keeps its memory; a snapshot
// that does not fit this PGlite, these migrations or its own manifest is never used, and PGlite
// initialises the folder itself as before. The real `latchkey serve` process is measured: its peak
// resident memory on a first start was 800-845 MiB with initdb, ~250 MiB from the snapshot.
import { copyFile, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDatabase } from '../../src/db/client.js';
import { applyMigrations } from '../../src/db/migrate.js';
import { readMigrations } from '../../src/db/migrations-fs.js';
import { openEmbeddedDatabase } from '../../src/runtime/embedded-database.js';
import {
  seedEmbeddedDatabase,
  SNAPSHOT_FILE,
  SNAPSHOT_MANIFEST,
  type SeedOutcome,
  type SnapshotManifest,
} from '../../src/runtime/embedded-snapshot.js';
import { startServe } from '../helpers/process.js';

const SLOW = 180_000;
let dir: string;
let manifest: SnapshotManifest;
// Opening the embedded database makes this process's files private (umask 077), as it does for
// `serve`; the test worker runs other files after this one, so the umask is put back.
let umask: number;

beforeAll(async () => {
  umask = process.umask();
  dir = await mkdtemp(join(tmpdir(), 'latchkey-snapshot-'));
  manifest = JSON.parse(await readFile(SNAPSHOT_MANIFEST, 'utf8')) as SnapshotManifest;
});
afterAll(async () => {
  process.umask(umask);
  await rm(dir, { recursive: true, force: true });
});

/** The build's archive with a manifest changed by `edit`, in a dir of its own. */
async function variant(name: string, edit: (m: SnapshotManifest) => SnapshotManifest) {
  const archive = join(dir, `${name}.tar.gz`);
  const file = join(dir, `${name}.json`);
  await copyFile(SNAPSHOT_FILE, archive);
  await writeFile(file, JSON.stringify(edit({ ...manifest })));
  return { archive, manifest: file };
}

describe('first start from the build snapshot', () => {
  it(
    'an empty data dir gets the snapshot: every migration already applied, then a restart finds it',
    async () => {
      const data = join(dir, 'fresh');
      const seen: SeedOutcome[] = [];
      const database = await openEmbeddedDatabase(data, 'test', (o) => seen.push(o));
      try {
        expect(seen).toEqual(['snapshot']);
        expect(await applyMigrations(database, await readMigrations())).toEqual([]);
        const tables = await database.withSession((run) =>
          run(`SELECT count(*)::int AS n FROM information_schema.tables WHERE table_schema = 'public'`),
        );
        expect(Number(tables[0]!.n)).toBeGreaterThan(5);
        await database.withSession((run) => run(`CREATE TABLE snapshot_probe (x int)`));
      } finally {
        await database.close();
      }
      const again: SeedOutcome[] = [];
      const reopened = await openEmbeddedDatabase(data, 'test', (o) => again.push(o));
      try {
        expect(again).toEqual(['existing']);
        // The same cluster, not a second unpack over it.
        expect(await reopened.withSession((run) => run(`SELECT count(*)::int AS n FROM snapshot_probe`))).toEqual([{ n: 0 }]);
      } finally {
        await reopened.close();
      }
      expect((await readdir(data)).filter((n) => n.includes('unpacking'))).toEqual([]);
    },
    SLOW,
  );

  it('a snapshot from another PGlite, other migrations or with a wrong PG_VERSION is not used', async () => {
    const migrations = await readMigrations();
    const cases: [string, (m: SnapshotManifest) => SnapshotManifest, RegExp][] = [
      ['other-pglite', (m) => ({ ...m, pglite: '0.0.1' }), /PGlite 0\.0\.1/],
      ['other-migrations', (m) => ({ ...m, migrations: '0'.repeat(64) }), /other migrations/],
      ['wrong-pg-version', (m) => ({ ...m, pgVersion: '9' }), /PostgreSQL 18/],
      ['other-format', (m) => ({ ...m, format: 2 as unknown as 1 }), /format/],
    ];
    for (const [name, edit, reason] of cases) {
      const folder = join(dir, `case-${name}`, 'pglite');
      const outcome = await seedEmbeddedDatabase(folder, migrations, await variant(name, edit));
      expect(typeof outcome === 'object' ? outcome.fallback : outcome, name).toMatch(reason);
      // Nothing left behind: PGlite will initialise an absent folder itself.
      expect(await readdir(join(dir, `case-${name}`)).catch(() => [])).toEqual([]);
    }
    const missing = await seedEmbeddedDatabase(join(dir, 'case-missing', 'pglite'), migrations, {
      archive: join(dir, 'absent.tar.gz'),
      manifest: join(dir, 'absent.json'),
    });
    expect(missing).toEqual({ fallback: expect.stringMatching(/no snapshot/) });
  });

  it(
    'the fallback still works: a folder PGlite initialised itself (no snapshot) opens and migrates',
    async () => {
      await mkdir(join(dir, 'initdb'));
      const folder = join(dir, 'initdb', 'pglite');
      const outcome = await seedEmbeddedDatabase(folder, await readMigrations(), {
        archive: join(dir, 'absent.tar.gz'),
        manifest: join(dir, 'absent.json'),
      });
      expect(outcome).toEqual({ fallback: expect.any(String) });
      const database = await openDatabase({ dataDir: folder });
      try {
        expect((await applyMigrations(database, await readMigrations())).length).toBe(manifest.tags.length);
      } finally {
        await database.close();
      }
    },
    SLOW,
  );

  it(
    'latchkey serve on an empty data dir: no initdb, and its peak memory is a restart’s, not 800 MiB',
    async () => {
      const data = join(dir, 'serve');
      const peak = async (pid: number) => Number(/^VmHWM:\s+(\d+) kB/m.exec(await readFile(`/proc/${pid}/status`, 'utf8'))![1]) / 1024;
      const first = await startServe(['--data-dir', data], { LOG_LEVEL: 'info' });
      const firstPeak = await peak(first.child.pid!);
      expect(await first.stop()).toBe(0);
      expect(first.output().stdout).not.toMatch(/without the snapshot/);
      const second = await startServe(['--data-dir', data], { LOG_LEVEL: 'info' });
      const restartPeak = await peak(second.child.pid!);
      expect(await second.stop()).toBe(0);
      // initdb held 800-845 MiB; from the snapshot a first start peaks near a restart (~250 MiB).
      expect(firstPeak).toBeLessThan(400);
      expect(firstPeak).toBeLessThan(restartPeak + 120);
    },
    SLOW,
  );
});
