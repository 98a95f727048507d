// Whether a registered key may still send, written once (spec/PROTOCOL.md §8 steps 4 and 11, §8.1).
// Both statements that read a sender (the first lookup, services/ingest.ts, and the storing
// statement, services/store-batcher.ts) embed these fragments, and nothing in TypeScript decides
// status again: the statements return the refusal code itself. The counter window's TypeScript
// form is the protocol's counterInWindow (src/protocol/envelope.ts), used for the early check
// before opening; test/messaging/sender-rules.test.ts evaluates both forms in PostgreSQL on the
// same inputs.
import type { ProtocolErrorCode } from '../../protocol/errors.js';

/** Column expressions a rule reads, as SQL text of the statement that embeds it. */
export interface SenderColumns {
  agentStatus: string;
  keyStatus: string;
  /** A boolean: the key's expires_at is after the message's receipt time. */
  unexpired: string;
}

/** First match wins: a revoked agent, a revoked key, then anything not active or past its expiry. */
const SENDER_REFUSALS: readonly { code: ProtocolErrorCode; when: (c: SenderColumns) => string }[] = [
  { code: 'agent_revoked', when: (c) => `${c.agentStatus} = 'revoked'` },
  { code: 'key_revoked', when: (c) => `${c.keyStatus} = 'revoked'` },
  // A key superseded by a renewal: its life is over.
  { code: 'key_expired', when: (c) => `${c.agentStatus} <> 'active' OR ${c.keyStatus} <> 'active' OR NOT (${c.unexpired})` },
];

/** Every code senderRefusalSql can yield. */
export const SENDER_REFUSAL_CODES: readonly ProtocolErrorCode[] = SENDER_REFUSALS.map((r) => r.code);

/** A SQL expression: the ProtocolErrorCode refusing this key and agent, or NULL when they may send. */
export function senderRefusalSql(c: SenderColumns): string {
  return `(CASE ${SENDER_REFUSALS.map((r) => `WHEN ${r.when(c)} THEN '${r.code}'`).join(' ')} END)`;
}

/** A SQL boolean: counterInWindow(ctr, highest, window) of src/protocol/envelope.ts. */
export function counterInWindowSql(ctr: string, highest: string, window: string): string {
  return `(${ctr} > ${highest} - ${window})`;
}
