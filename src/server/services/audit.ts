// The append-only, hash-chained audit log (spec/PROTOCOL.md §19). Each entry's hash is
//   SHA-256(prev_hash || canonical JSON of [seq, at, actor, action, outcome, code, sourceAddr, tokenId, agentId, details])
// with the genesis prev_hash = 32 zero bytes and `at` as ISO-8601 UTC in whole milliseconds, which is
// exactly what is stored: the verifier reads the stored time at the database's full (microsecond)
// precision and refuses an entry whose time is not the hashed one. An append is one statement: it
// advances the one row of audit_head (seq + 1, the new hash computed by PostgreSQL from the head's
// hash and the entry's bytes made here) and inserts the entry from what that UPDATE returned. The
// UPDATE waits for the head row and then works on its newest version, so concurrent writers (on any
// instance) extend one chain, and the row is held only until the appending transaction ends: no
// lock is held across round trips to the client. verifyAuditChain recomputes the chain and, given
// an earlier signed head (audit-head.ts), checks that the chain still passes through it.
import { sha256 } from '@noble/hashes/sha2.js';
import { asc, getTableColumns, sql, type SQL } from 'drizzle-orm';
import { b64u, concatBytes, constantTimeEqual, utf8 } from '../../protocol/bytes.js';
import { rowsOf, type Db, type Tx } from '../../db/database.js';
import { auditLog } from '../../db/schema.js';
import type { Logger } from '../logger.js';
import type { RefusalCoalescer } from './rate-limiter.js';

/** A chain position and the hash of its entry (audit-head.ts signs it). */
export interface AuditHead {
  /** Entries in the chain; the head entry's seq (0: empty). */
  seq: number;
  hash: Uint8Array;
}

export const GENESIS = new Uint8Array(32);

export interface AuditEntry {
  actor: string;
  action: string;
  outcome: 'success' | 'failure';
  code?: string | null;
  sourceAddr?: string | null;
  tokenId?: string | null;
  agentId?: string | null;
  details?: Record<string, unknown>;
  /** When it happened, from the caller's clock (ctx.now on the server). */
  at: Date;
}

/** JSON with object keys sorted at every level: jsonb does not keep key order. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value && typeof value === 'object') {
    const keys = Object.keys(value as object).sort();
    return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson((value as Record<string, unknown>)[k])}`).join(',')}}`;
  }
  return JSON.stringify(value ?? null);
}

interface ChainedFields {
  at: Date;
  actor: string;
  action: string;
  outcome: string;
  code: string | null;
  sourceAddr: string | null;
  tokenId: string | null;
  agentId: string | null;
  details: Record<string, unknown>;
}

/**
 * The hashed bytes of an entry after its seq: canonical JSON of [seq, …fields] is
 * "[" + seq + "," + this. Split so PostgreSQL can prepend the seq it assigns (bigint as text is
 * the JSON number) and hash prev_hash || "[seq," || tail itself.
 */
function entryTail(row: ChainedFields): Uint8Array {
  const rest = [row.at.toISOString(), row.actor, row.action, row.outcome, row.code, row.sourceAddr, row.tokenId, row.agentId, row.details];
  return utf8(`${rest.map(canonicalJson).join(',')}]`);
}

function entryHash(prev: Uint8Array, row: ChainedFields & { seq: number }): Uint8Array {
  return sha256(concatBytes(prev, utf8(`[${row.seq},`), entryTail(row)));
}

/** An entry's columns as appended (time cut to whole milliseconds, absent fields null). */
function entryFields(entry: AuditEntry): ChainedFields {
  return {
    at: new Date(Math.floor(entry.at.getTime())),
    actor: entry.actor,
    action: entry.action,
    outcome: entry.outcome,
    code: entry.code ?? null,
    sourceAddr: entry.sourceAddr ?? null,
    tokenId: entry.tokenId ?? null,
    agentId: entry.agentId ?? null,
    details: entry.details ?? {},
  };
}

/**
 * The parts of an append for a statement of its own making (enrollment puts its entry in the
 * statement that enrolls): the entry's column values as SQL and its hashed tail as a bytea.
 */
export function auditEntrySql(entry: AuditEntry): { columns: SQL[]; tail: SQL } {
  const f = entryFields(entry);
  return {
    columns: [
      sql`${f.at.toISOString()}::timestamptz`,
      sql`${f.actor}::text`,
      sql`${f.action}::text`,
      sql`${f.outcome}::text`,
      sql`${f.code}::text`,
      sql`${f.sourceAddr}::text`,
      sql`${f.tokenId}::text`,
      sql`${f.agentId}::text`,
      sql`${JSON.stringify(f.details)}::jsonb`,
    ],
    tail: sql`${entryTail(f)}::bytea`,
  };
}

/** audit_log's columns in the order of auditEntrySql's columns, then the chain's. */
export const AUDIT_COLUMNS = sql.raw('seq, at, actor, action, outcome, code, source_addr, token_id, agent_id, details, prev_hash, hash');

/**
 * Advances the chain's head by one entry whose hashed tail is `tail` (a bytea expression; it may
 * name columns of `from`, joined to the head: no row there, no advance). Returns seq, prev_hash, hash.
 */
export function advanceAuditHead(tail: SQL, from?: SQL): SQL {
  return sql`UPDATE audit_head SET seq = audit_head.seq + 1, prev_hash = audit_head.hash,
    hash = sha256(audit_head.hash || convert_to('[' || (audit_head.seq + 1)::text || ',', 'UTF8') || ${tail})
    ${from ? sql`FROM ${from} ` : sql``}WHERE audit_head.id = 1
    RETURNING audit_head.seq AS seq, audit_head.prev_hash AS prev_hash, audit_head.hash AS hash`;
}

/**
 * Appends inside the caller's transaction (the entry commits or rolls back with the action), or on
 * its own when given the database. One statement; fails closed if the chain has no head row.
 */
export async function appendAudit(tx: Tx | Db, entry: AuditEntry): Promise<number> {
  const { columns, tail } = auditEntrySql(entry);
  const rows = rowsOf(
    await tx.execute(sql`WITH head AS (${advanceAuditHead(tail)})
      INSERT INTO audit_log (${AUDIT_COLUMNS}) SELECT head.seq, ${sql.join(columns, sql`, `)}, head.prev_hash, head.hash FROM head
      RETURNING seq`),
  );
  if (rows.length !== 1) throw new Error('the audit chain has no head row');
  return Number(rows[0]!.seq);
}

/**
 * Counts a rate-limited refusal into the source's coalesced audit row: one `rate_limited` failure per
 * source and window, with the count and the time span, so a flood cannot grow the log at will.
 */
export function noteRateLimited(
  deps: { database: { db: Db }; logger: Logger },
  refusals: RefusalCoalescer,
  entry: { actor: string; action: string; sourceAddr: string },
): void {
  refusals.note(entry.sourceAddr, ({ count, from, to }) => {
    appendAuditAlone(deps.database.db, {
      ...entry,
      at: new Date(to),
      outcome: 'failure',
      code: 'rate_limited',
      details: { count, from: new Date(from).toISOString(), to: new Date(to).toISOString() },
    }).catch((err: unknown) => deps.logger.error({ err: String(err) }, 'audit append failed'));
  });
}

/** Appends on its own (for failures whose action transaction rolled back): one statement, its own transaction. */
export function appendAuditAlone(db: Db, entry: AuditEntry): Promise<number> {
  return appendAudit(db, entry);
}

export interface ChainStatus {
  ok: boolean;
  entries: number;
  /** First sequence number whose entry or link does not verify, or where the expected head is not. */
  brokenAt?: number;
  /**
   * Why not ok: `broken` (an entry or link does not verify), `truncated` (fewer entries than the
   * expected head), `rewritten` (the entry at the expected head's position has another hash).
   */
  problem?: 'broken' | 'truncated' | 'rewritten';
  headHash?: string;
  /** The verified head (only when ok), to be signed and kept elsewhere. */
  head?: AuditHead;
}

/** The stored time at microsecond precision, as text, whatever the driver does with timestamps. */
const AT_FULL = sql<string>`to_char(${auditLog.at} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')`;

/** Whether the stored time is exactly the millisecond instant that was hashed. */
function storedAtIsHashed(at: Date, full: string): boolean {
  return full === at.toISOString().replace(/Z$/, '000Z');
}

/** Walks the chain from genesis; with `expect`, also requires the entry at expect.seq to have expect.hash. */
export async function verifyAuditChain(db: Db, expect?: AuditHead): Promise<ChainStatus> {
  if (expect?.seq === 0 && !constantTimeEqual(expect.hash, GENESIS)) return { ok: false, entries: 0, brokenAt: 0, problem: 'rewritten' };
  let prev: Uint8Array = GENESIS;
  let expectedSeq = 1;
  let count = 0;
  const pageSize = 1000;
  for (let offset = 0; ; offset += pageSize) {
    const rows = await db
      .select({ ...getTableColumns(auditLog), atFull: AT_FULL })
      .from(auditLog)
      .orderBy(asc(auditLog.seq))
      .limit(pageSize)
      .offset(offset);
    for (const r of rows) {
      const recomputed = entryHash(prev, { ...r, details: r.details ?? {} });
      if (
        r.seq !== expectedSeq ||
        !constantTimeEqual(r.prevHash, prev) ||
        !constantTimeEqual(r.hash, recomputed) ||
        !storedAtIsHashed(r.at, r.atFull)
      ) {
        return { ok: false, entries: count, brokenAt: r.seq, problem: 'broken' };
      }
      if (expect && r.seq === expect.seq && !constantTimeEqual(r.hash, expect.hash)) {
        return { ok: false, entries: count, brokenAt: r.seq, problem: 'rewritten' };
      }
      prev = r.hash;
      expectedSeq++;
      count++;
    }
    if (rows.length < pageSize) break;
  }
  if (expect && count < expect.seq) return { ok: false, entries: count, brokenAt: count + 1, problem: 'truncated' };
  return { ok: true, entries: count, headHash: b64u(prev), head: { seq: count, hash: prev } };
}
