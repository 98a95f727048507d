import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { defineConfig } from 'vitest/config';
import SlowFirstSequencer from './test/helpers/sequencer.js';

const root = import.meta.dirname;
const testFiles = (readdirSync(join(root, 'test'), { recursive: true }) as string[])
  .filter((f) => f.endsWith('.test.ts'))
  .map((f) => relative(root, join(root, 'test', f)));
/**
 * Files that start real processes keep a fresh worker each (vitest's isolation). The rest run
 * in-process only and share their worker's modules with the files before them (isolate: false): no
 * fork, no re-import of the app, and one PGlite per worker instead of one per file (db.ts keeps it
 * in its module), which is most of the CPU such a file costs. They must leave no process-wide state
 * behind (env, umask, globals, listeners); test/helpers/isolation-setup.ts checks the usual ones.
 */
export const ownProcessFiles = testFiles.filter((f) =>
  /helpers\/process\.js'|from 'node:child_process'/.test(readFileSync(join(root, f), 'utf8')),
);

// What both projects share. Not `extends: true`: the projects would inherit globalSetup and run it
// (the build) once each; the root's globalSetup runs once and its provide() reaches both.
const shared = {
  pool: 'forks',
  // A stray `.only` fails the run (locally too, not only under CI=true) instead of silently skipping the rest.
  allowOnly: false,
  // Two cores: two files at a time; a file with processes opens its own PGlite (~3 s, ~700 MiB), the
  // in-process files one per worker.
  maxWorkers: 2,
  testTimeout: 30_000,
  hookTimeout: 60_000,
} as const;

export default defineConfig({
  test: {
    ...shared,
    globalSetup: ['test/helpers/global-setup.ts'],
    // Without the durations of an earlier run (CI), the slowest files start first (see the file).
    sequence: { sequencer: SlowFirstSequencer },
    reporters: ['default', 'json', './test/helpers/databases-reporter.ts'],
    outputFile: { json: 'coverage/vitest-results.json' },
    projects: [
      { test: { ...shared, name: 'processes', include: ownProcessFiles } },
      {
        test: {
          ...shared,
          name: 'in-process',
          include: ['test/**/*.test.ts'],
          exclude: ownProcessFiles,
          isolate: false,
          setupFiles: ['test/helpers/isolation-setup.ts'],
        },
      },
    ],
  },
});
