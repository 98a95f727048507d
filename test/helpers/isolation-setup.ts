// Runs before every file of the "in-process" project (vitest.config.ts), whose files share one
// worker process and its modules one after the other. A file that leaves process-wide state behind
// would change what the next file tests, so each file's state is compared with what it found: a
// difference is put back and fails the file that made it.
import { afterAll, beforeAll } from 'vitest';
import { sharedPgliteInUse } from './db.js';

const SIGNALS = ['SIGTERM', 'SIGINT', 'SIGHUP', 'message', 'uncaughtException', 'unhandledRejection'] as const;

function snapshot() {
  const umask = process.umask();
  return {
    umask,
    cwd: process.cwd(),
    env: { ...process.env },
    fetch: globalThis.fetch,
    listeners: Object.fromEntries(SIGNALS.map((s) => [s, process.listenerCount(s)])),
  };
}

let before: ReturnType<typeof snapshot>;
beforeAll(() => {
  before = snapshot();
});
afterAll(() => {
  const after = snapshot();
  const leaks: string[] = [];
  if (after.umask !== before.umask) {
    leaks.push(`umask ${after.umask.toString(8)} (was ${before.umask.toString(8)})`);
    process.umask(before.umask);
  }
  if (after.cwd !== before.cwd) {
    leaks.push(`cwd ${after.cwd}`);
    process.chdir(before.cwd);
  }
  for (const k of new Set([...Object.keys(before.env), ...Object.keys(after.env)])) {
    if (before.env[k] === after.env[k]) continue;
    leaks.push(`env ${k}`);
    if (before.env[k] === undefined) delete process.env[k];
    else process.env[k] = before.env[k];
  }
  if (after.fetch !== before.fetch) {
    leaks.push('globalThis.fetch');
    globalThis.fetch = before.fetch;
  }
  for (const s of SIGNALS) if (after.listeners[s] !== before.listeners[s]) leaks.push(`process '${s}' listeners`);
  // Not closable from here (its owner may still use it); the next file would open a second instance.
  if (sharedPgliteInUse()) leaks.push('a test database on the shared PGlite, never disposed');
  if (leaks.length) throw new Error(`this file left process-wide state behind for the next one: ${leaks.join(', ')}`);
});
