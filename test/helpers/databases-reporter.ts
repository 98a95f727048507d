// Closes every run with the databases it covered, counted from the tests that ran: suites over
// dbKinds are named "… on pglite" / "… on postgres" (db.ts). A run where PostgreSQL ran nothing says
// so here, at the end, not only in the first lines.
import type { Reporter, TestModule } from 'vitest/node';

export const DATABASE_SUITE = /\bon (pglite|postgres)\b/;

export default class DatabasesReporter implements Reporter {
  onTestRunEnd(testModules: ReadonlyArray<TestModule>): void {
    const ran = { pglite: 0, postgres: 0 };
    for (const m of testModules) {
      for (const t of m.children.allTests()) {
        const state = t.result().state;
        const kind = DATABASE_SUITE.exec(t.fullName)?.[1] as keyof typeof ran | undefined;
        if (kind && (state === 'passed' || state === 'failed')) ran[kind]++;
      }
    }
    if (ran.pglite + ran.postgres === 0) return console.log('databases covered: none (no database tests in this run)');
    const missing = ran.postgres === 0 ? ' (PostgreSQL ran none: see the first lines of this run)' : '';
    console.log(`databases covered: PGlite ${ran.pglite} tests, PostgreSQL ${ran.postgres} tests${missing}`);
  }
}
