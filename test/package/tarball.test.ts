// Issue 14, "A package that installs as a user would": `npm pack` makes a tarball holding the built
// dist/ (the prepack script builds it; here dist/ is already built by global-setup, so the pack skips
// scripts to keep the test short), with what the runtime reads (migrations, the GLPI schema) and
// without sources or tests. Installed globally into an empty prefix (from the npm cache where it can: no
// registry round trip for what npm ci already fetched; no dev dependencies), its `latchkey` answers --version, serves, and enrolls an agent.
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanEnv } from '../helpers/process.js';

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL('../../', import.meta.url));

describe('the package tarball', () => {
  let dir: string;
  let tarball: string;
  let files: string[];
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'latchkey-pack-'));
    const packed = await run('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', dir], { cwd: ROOT, maxBuffer: 16 << 20 });
    const [info] = JSON.parse(packed.stdout) as { filename: string; files: { path: string }[] }[];
    tarball = join(dir, info!.filename);
    files = info!.files.map((f) => f.path);
  }, 120_000);
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('builds dist/ before packing and holds what the runtime needs, not sources or tests', async () => {
    const pkg = JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')) as {
      scripts: Record<string, string>;
      bin: Record<string, string>;
    };
    expect(pkg.scripts.prepack).toBe('npm run build');
    expect(files).toContain(pkg.bin.latchkey);
    for (const needed of [
      // The GLPI schema is compiled into this module at build time; the JSON is not read at runtime.
      'dist/server/glpi/inventory-validator.generated.js',
      'migrations/meta/_journal.json',
      'README.md',
      'contrib/systemd/latchkey-server.service',
    ])
      expect(files).toContain(needed);
    expect(files.some((f) => f.startsWith('migrations/') && f.endsWith('.sql'))).toBe(true);
    expect(files.filter((f) => f.startsWith('src/') || f.startsWith('test/') || f.endsWith('.map') || f.endsWith('.ts'))).toEqual([]);
  });

  it('installs into an empty prefix without dev dependencies and enrolls an agent', async () => {
    const prefix = join(dir, 'prefix');
    await run('npm', ['install', '-g', tarball, '--prefix', prefix, '--prefer-offline', '--no-audit', '--no-fund', '--loglevel=error'], {
      cwd: dir,
      env: { ...process.env, npm_config_prefix: prefix },
    });
    const installed = join(prefix, 'lib', 'node_modules', 'latchkey');
    const deps = (await run('npm', ['ls', '--omit=dev', '--all', '--parseable'], { cwd: installed }).catch((e: { stdout: string }) => e))
      .stdout;
    expect(deps).not.toMatch(/node_modules\/(typescript|vitest|tsx|drizzle-kit|wrangler|eslint)$/m);
    const size = (await run('du', ['-sk', prefix])).stdout.split('\t')[0];
    console.log(`installed size: ${Math.round(Number(size) / 1024)} MiB`);

    const latchkey = join(prefix, 'bin', 'latchkey');
    const version = await run(latchkey, ['--version'], { env: cleanEnv() });
    expect(version.stdout.trim()).toBe('0.1.0');

    // The installed package serves (embedded database, migrations from the package) and enrolls.
    const { spawn } = await import('node:child_process');
    const serve = spawn(latchkey, ['serve', '--port', '0', '--data-dir', join(dir, 'data')], {
      env: cleanEnv(),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    try {
      const url = await new Promise<string>((resolve, reject) => {
        let out = '';
        serve.stdout.on('data', (d: Buffer) => {
          out += d.toString();
          const m = /latchkey listening on (\S+)/.exec(out);
          if (m) resolve(m[1]!);
        });
        serve.once('exit', (code) => reject(new Error(`serve exited with ${code}`)));
      });
      const env = cleanEnv({ LATCHKEY_SERVER: url, LATCHKEY_DATA_DIR: join(dir, 'data') });
      const token = (await run(latchkey, ['token', 'create'], { env })).stdout.trim();
      const enrolled = await run(
        latchkey,
        ['agent', 'enroll', '--server', url, '--token', token, '--state-dir', join(dir, 'agent'), '--name', 'packaged'],
        { env },
      );
      expect(enrolled.stdout.trim()).toMatch(/^[0-9a-f-]{36}$/);
      const listed = await run(latchkey, ['agents', 'list', '--name', 'packaged', '--json'], { env });
      expect((JSON.parse(listed.stdout) as { name: string }[]).map((a) => a.name)).toEqual(['packaged']);
      // An inventory through the packaged validator (compiled at build time, no schema file at runtime).
      const inventory = fileURLToPath(new URL('../fixtures/glpi/format/computer_1.json', import.meta.url));
      await run(latchkey, ['agent', 'send', '--state-dir', join(dir, 'agent'), '--file', inventory], { env });
    } finally {
      serve.kill('SIGTERM');
    }
  }, 600_000); // an install and a first embedded start: ~1-2 min on a quiet machine, far more on a busy one
});
