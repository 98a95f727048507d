import { defineConfig } from 'vitest/config';
import SlowFirstSequencer from './test/helpers/sequencer.js';

/**
 * Every file runs in one of two long-lived workers (one per core) and shares its modules with the
 * files before it (isolate: false): no fork and no re-import of the app per file, and one PGlite per
 * worker instead of one per file (db.ts keeps it in its module), which is most of the CPU a file
 * costs. Files that start real processes stop them in their own hooks. A file must leave no
 * process-wide state behind (env, umask, cwd, globals, listeners, the shared PGlite):
 * test/helpers/isolation-setup.ts checks the usual ones and fails the file that does.
 */
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/helpers/global-setup.ts'],
    setupFiles: ['test/helpers/isolation-setup.ts'],
    pool: 'forks',
    isolate: false,
    // A stray `.only` fails the run (locally too, not only under CI=true) instead of silently skipping the rest.
    allowOnly: false,
    // Two cores: two files at a time.
    maxWorkers: 2,
    // Without the durations of an earlier run (CI), the slowest files start first (see the file).
    sequence: { sequencer: SlowFirstSequencer },
    testTimeout: 30_000,
    hookTimeout: 60_000,
    reporters: ['default', 'json', './test/helpers/databases-reporter.ts'],
    outputFile: { json: 'coverage/vitest-results.json' },
  },
});
