// TEST ONLY: crash points for the renewal's crash-safety tests (test/cli/agent-renew-crash.test.ts).
// When the environment variable LATCHKEY_TEST_FAILPOINT names a point (e.g. `renew:after-send`), the
// process SIGKILLs itself there: no cleanup, no flush, exactly what a power cut or an OOM kill leaves.
// Read here and nowhere else; unset in production, where `failpoint` does nothing.
export const FAILPOINT_ENV = 'LATCHKEY_TEST_FAILPOINT';

/** The renewal's points, in order (spec §12, agent crash safety). */
export const RENEW_FAILPOINTS = [
  'renew:before-send', // next keys persisted (pending.json), nothing sent
  'renew:after-send', // the server renewed and answered; the answer is lost unread
  'renew:after-answer', // the answer verified, nothing written yet
  'renew:after-journal', // renewed.json written, keys.json and agent.json still the old ones
  'renew:between-files', // keys.json replaced, agent.json not yet: the files disagree until the journal is applied
] as const;
export type Failpoint = (typeof RENEW_FAILPOINTS)[number];

export function failpoint(name: Failpoint): void {
  if (process.env[FAILPOINT_ENV] === name) process.kill(process.pid, 'SIGKILL');
}
