import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/helpers/global-setup.ts'],
    pool: 'forks',
    // A stray `.only` fails the run (locally too, not only under CI=true) instead of silently skipping the rest.
    allowOnly: false,
    // Two cores: two files at a time; each file shares one PGlite instance (~3 s, ~700 MiB).
    maxWorkers: 2,
    testTimeout: 30_000,
    hookTimeout: 60_000,
    reporters: ['default', 'json', './test/helpers/databases-reporter.ts'],
    outputFile: { json: 'coverage/vitest-results.json' },
  },
});
