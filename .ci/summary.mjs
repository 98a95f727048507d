// Prints the plain closing lines CI reads from vitest's JSON report: the databases the run covered,
// then "tests: N passed, N failed, N skipped" last. Suites over the databases are named "… on pglite" /
// "… on postgres" (test/helpers/db.ts). Under CI, a run in which PostgreSQL ran no test fails here too,
// whatever the test command said: skipping PostgreSQL must never look like a green run.
import { existsSync, readFileSync } from 'node:fs';

const report = new URL('../coverage/vitest-results.json', import.meta.url);
if (!existsSync(report)) {
  console.log('tests: not run (no vitest report: the test command stopped before vitest)');
  process.exit(1);
}
const r = JSON.parse(readFileSync(report, 'utf8'));
const ran = { pglite: 0, postgres: 0 };
for (const file of r.testResults) {
  for (const t of file.assertionResults) {
    const kind = /\bon (pglite|postgres)\b/.exec(t.fullName)?.[1];
    if (kind && (t.status === 'passed' || t.status === 'failed')) ran[kind]++;
  }
}
const ci = !!process.env.CI && process.env.CI !== 'false' && process.env.CI !== '0';
console.log(`databases: PGlite ${ran.pglite} tests, PostgreSQL ${ran.postgres} tests`);
const withoutPostgres = ci && ran.postgres === 0;
if (withoutPostgres) console.log('error: CI run without PostgreSQL: no test ran on it');
console.log(`tests: ${r.numPassedTests} passed, ${r.numFailedTests} failed, ${r.numPendingTests + r.numTodoTests} skipped`);
if (withoutPostgres) process.exit(1);
