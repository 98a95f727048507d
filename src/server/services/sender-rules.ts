// Whether a registered key may still send, written once (spec/PROTOCOL.md §8 steps 4 and 11, §8.1,
// §12). Both statements that read a sender (the first lookup, services/ingest.ts, and the storing
// statement, services/store-batcher.ts) embed the SQL form, and return the refusal code itself;
// renewal (services/renewal.ts), which reads one locked row, uses the TypeScript form. The counter
// window's TypeScript form is the protocol's counterInWindow (src/protocol/envelope.ts), used for
// the early check before opening. test/messaging/sender-rules.test.ts evaluates both forms of each
// rule in PostgreSQL and PGlite on the same inputs.
import type { ProtocolErrorCode } from '../../protocol/errors.js';

/** Column expressions a rule reads, as SQL text of the statement that embeds it. */
export interface SenderColumns {
  agentStatus: string;
  keyStatus: string;
  /** A boolean: the key's expires_at is after the message's receipt time. */
  unexpired: string;
  /** A boolean or NULL: the key's superseded_until is after the message's receipt time. */
  inOverlap: string;
}

/** The same facts, as values. */
export interface SenderFacts {
  agentStatus: string;
  keyStatus: string;
  unexpired: boolean;
  /** superseded_until is set and after the receipt time. */
  inOverlap: boolean;
}

/**
 * First match wins: a revoked agent, a revoked key, then anything past its expiry, or not active,
 * except a key superseded by a renewal during its overlap (messages already on their way land).
 */
const SENDER_REFUSALS: readonly { code: ProtocolErrorCode; sql: (c: SenderColumns) => string; ts: (f: SenderFacts) => boolean }[] = [
  { code: 'agent_revoked', sql: (c) => `${c.agentStatus} = 'revoked'`, ts: (f) => f.agentStatus === 'revoked' },
  { code: 'key_revoked', sql: (c) => `${c.keyStatus} = 'revoked'`, ts: (f) => f.keyStatus === 'revoked' },
  {
    code: 'key_expired',
    sql: (c) =>
      `${c.agentStatus} <> 'active' OR NOT (${c.unexpired}) OR (${c.keyStatus} <> 'active' AND NOT (${c.keyStatus} = 'superseded' AND COALESCE(${c.inOverlap}, false)))`,
    ts: (f) => f.agentStatus !== 'active' || !f.unexpired || (f.keyStatus !== 'active' && !(f.keyStatus === 'superseded' && f.inOverlap)),
  },
];

/** Every code senderRefusalSql can yield. */
export const SENDER_REFUSAL_CODES: readonly ProtocolErrorCode[] = SENDER_REFUSALS.map((r) => r.code);

/** A SQL expression: the ProtocolErrorCode refusing this key and agent, or NULL when they may send. */
export function senderRefusalSql(c: SenderColumns): string {
  return `(CASE ${SENDER_REFUSALS.map((r) => `WHEN ${r.sql(c)} THEN '${r.code}'`).join(' ')} END)`;
}

/** The same rule on values read already (a locked row): the refusal, or undefined when they may send. */
export function senderRefusal(f: SenderFacts): ProtocolErrorCode | undefined {
  return SENDER_REFUSALS.find((r) => r.ts(f))?.code;
}

/** A SQL boolean: counterInWindow(ctr, highest, window) of src/protocol/envelope.ts. */
export function counterInWindowSql(ctr: string, highest: string, window: string): string {
  return `(${ctr} > ${highest} - ${window})`;
}
