import { defineConfig } from 'vitest/config';
import SlowFirstSequencer from './test/helpers/sequencer.js';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/helpers/global-setup.ts'],
    pool: 'forks',
    // A stray `.only` fails the run (locally too, not only under CI=true) instead of silently skipping the rest.
    allowOnly: false,
    // Two cores: two files at a time; each file shares one PGlite instance (~3 s, ~700 MiB).
    maxWorkers: 2,
    // Without the durations of an earlier run (CI), the slowest files start first (see the file).
    sequence: { sequencer: SlowFirstSequencer },
    testTimeout: 30_000,
    hookTimeout: 60_000,
    reporters: ['default', 'json', './test/helpers/databases-reporter.ts'],
    outputFile: { json: 'coverage/vitest-results.json' },
  },
});
