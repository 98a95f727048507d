// Issue 14: the README's quick start is run as written, so it cannot drift from the CLI. The fenced
// block under "## Quick start" is extracted from README.md and run by bash (-e, -u, pipefail) with
// `latchkey` on PATH (the built dist/cli/main.js) in a fresh directory, against a fresh server whose
// data dir is that directory's ./.latchkey, as after `npm start`. The one change: the server's URL
// (the README's http://127.0.0.1:8080) becomes the test server's, which listens on a free port.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdir, mkdtemp, readFile, rm, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI, startServe, type ServeProcess } from '../helpers/process.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const README_URL = 'http://127.0.0.1:8080';

/** The first ```sh block after the "## Quick start" heading. */
function quickStartBlock(readme: string): string {
  const section = readme.indexOf('\n## Quick start\n');
  if (section < 0) throw new Error('README.md has no "## Quick start" section');
  const m = /\n```sh\n([\s\S]*?)\n```\n/.exec(readme.slice(section));
  if (!m) throw new Error('the quick start has no ```sh block');
  return m[1]!;
}

describe('README quick start', { timeout: 240_000 }, () => {
  let dir: string;
  let server: ServeProcess;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'latchkey-quickstart-'));
    await mkdir(join(dir, 'bin'));
    await symlink(CLI, join(dir, 'bin', 'latchkey'));
    await mkdir(join(dir, 'test'));
    await symlink(join(ROOT, 'test', 'fixtures'), join(dir, 'test', 'fixtures'));
    server = await startServe(['--data-dir', join(dir, '.latchkey')]);
  }, 120_000);
  afterAll(async () => {
    await server?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('runs every line of the README block, from a token to a verified audit log', async () => {
    const block = quickStartBlock(await readFile(join(ROOT, 'README.md'), 'utf8'));
    expect(block.split(README_URL)).toHaveLength(2); // the URL appears once: the only substitution
    expect(block.split('\n').filter((l) => l.startsWith('latchkey ') || l.includes('$(latchkey')).length).toBeGreaterThanOrEqual(9);
    const script = block.replace(README_URL, server.url);
    const child = spawn('bash', ['-euo', 'pipefail', '-c', script], {
      cwd: dir,
      env: { PATH: `${join(dir, 'bin')}:${process.env.PATH}`, HOME: dir, LOG_LEVEL: 'warn' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const [code] = (await once(child, 'close')) as [number | null];
    expect(code, `stdout:\n${stdout}\nstderr:\n${stderr}`).toBe(0);
    expect(stderr).toContain(`latchkey agent enroll --server ${server.url} --token lk1_`); // from token create
    expect(stdout).toMatch(/^accepted \S+ at /m); // agent send
    expect(stdout).toMatch(/^\S+\s+web-1\s+agent\s+active\s/m); // agents list
    expect(stdout).toMatch(/^name\s+web-1$/m); // agents show
    expect(stdout).toContain('"itemtype": "Printer"'); // inventory show
    expect(stdout).toContain('revoked agent web-1');
    expect(stderr).toMatch(/^error: agent_revoked: /m); // the send after the revocation
    expect(stdout).toContain('refused, exit 1');
    expect(stdout).toMatch(/agent\.enroll\s+success/); // audit
    expect(stdout).toMatch(/agent\.revoke\s+success/);
    expect(stdout).toMatch(/^audit chain intact: \d+ entries/m); // audit verify
  });
});
