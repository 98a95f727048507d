// Externally provisioned agents (spec/PROTOCOL.md §20): agents whose keys were made elsewhere (a
// manufacturing line, a CMDB) and reach the server by an import (`latchkey agents import`, POST
// /v1/admin/agents/import) or by a key request on first contact (key-request.ts). Both go through
// this file: one description of an agent, checked by the same rules as an enrollment (the key rule
// in protocol/agent-keys.ts, the name rule in name-rules.ts, the label rule in labels.ts, a CIDR in
// cidr.ts, duplicates among themselves and against the database), and one registration.
import { sha256 } from '@noble/hashes/sha2.js';
import { sql } from 'drizzle-orm';
import { acceptAgentPublicKeys, type AgentPublicKeys } from '../../protocol/agent-keys.js';
import { fromB64uExact } from '../../protocol/bytes.js';
import type { ProtocolContext } from '../../protocol/crypto/types.js';
import type { Role } from '../../protocol/credential.js';
import { rowsOf, type Database, type Tx } from '../../db/database.js';
import { uniqueViolation } from '../../db/pg-errors.js';
import { ApiError, type ErrorCode } from '../errors.js';
import { appendAudit } from './audit.js';
import { parseCidr } from './cidr.js';
import { DEFAULT_CREDENTIAL_TTL_SECONDS, MAX_CREDENTIAL_TTL_SECONDS } from '../lifetimes.js';
import { randomUuid } from './enrollment.js';
import { isValidLabels } from './labels.js';
import { isValidAgentName } from './name-rules.js';

/** One agent as an import line or a key source's answer describes it, checked. */
export interface ProvisionedAgent extends AgentPublicKeys {
  name: string;
  role: Role;
  labels: Record<string, string>;
  /** When its keys expire (ms); undefined: the server's credential lifetime from registration. */
  expiresAt: number | undefined;
  /** The source network its messages must come from; null: any. */
  cidr: string | null;
}

/** Why a description was refused: a fixed reason that never carries the input, and its code. */
export class ProvisioningError extends Error {
  constructor(
    readonly reason: string,
    readonly code: ErrorCode = 'request_invalid',
  ) {
    super(reason);
  }
}

/** Fields of an import line; a key source's `data` has the same but `expiresAt`. */
const IMPORT_FIELDS = new Set(['name', 'signingKey', 'agreementKey', 'role', 'labels', 'expiresAt', 'cidr']);
const ANSWER_FIELDS = new Set(['name', 'signingKey', 'agreementKey', 'role', 'labels', 'cidr']);
const ISO_UTC = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,3})?Z$/;

/**
 * Checks one description: exactly the known fields, the name rule, both keys by the one key rule,
 * the role, the labels, the CIDR, and (imports only) an ISO-8601 UTC `expiresAt` in the future and
 * within the longest credential lifetime.
 */
export function parseProvisionedAgent(input: unknown, kind: 'import' | 'answer', now: number): ProvisionedAgent {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) throw new ProvisioningError('not a JSON object');
  const o = input as Record<string, unknown>;
  const allowed = kind === 'import' ? IMPORT_FIELDS : ANSWER_FIELDS;
  for (const k of Object.keys(o)) if (!allowed.has(k)) throw new ProvisioningError('unknown field');
  if (typeof o.name !== 'string' || !isValidAgentName(o.name))
    throw new ProvisioningError('name: letters, digits, - _ . and at most 128 bytes', 'name_invalid');
  const sig = key(o.signingKey, 'signingKey');
  const kx = key(o.agreementKey, 'agreementKey');
  const keys = acceptAgentPublicKeys(sig, kx);
  if (!keys) throw new ProvisioningError('a key is not acceptable (small order or non-canonical)');
  const role = o.role ?? 'agent';
  if (role !== 'agent' && role !== 'relay') throw new ProvisioningError('role: agent or relay');
  const labels = o.labels ?? {};
  if (!isValidLabels(labels)) throw new ProvisioningError('labels: at most 32; keys [A-Za-z0-9._-]{1,64}; values at most 256 characters');
  let cidr: string | null = null;
  if (o.cidr !== undefined && o.cidr !== null) {
    if (typeof o.cidr !== 'string' || o.cidr.length > 64 || !parseCidr(o.cidr)) throw new ProvisioningError('cidr: an IPv4 or IPv6 CIDR');
    cidr = o.cidr;
  }
  let expiresAt: number | undefined;
  if (o.expiresAt !== undefined) {
    const at = typeof o.expiresAt === 'string' && ISO_UTC.test(o.expiresAt) ? Date.parse(o.expiresAt) : NaN;
    if (!Number.isFinite(at)) throw new ProvisioningError('expiresAt: an ISO-8601 UTC time (2027-01-31T00:00:00Z)');
    if (at <= now || at > now + MAX_CREDENTIAL_TTL_SECONDS * 1000)
      throw new ProvisioningError('expiresAt: in the future and at most 3660 days away');
    expiresAt = at;
  }
  return { name: o.name, role, labels, ...keys, expiresAt, cidr };
}

function key(v: unknown, field: string): Uint8Array {
  if (typeof v !== 'string' || v.length !== 43) throw new ProvisioningError(`${field}: 32 bytes, base64url`);
  try {
    return fromB64uExact(v, 32, 'payload_invalid');
  } catch {
    throw new ProvisioningError(`${field}: 32 bytes, base64url`);
  }
}

/** Agents per statement: each statement takes its columns as arrays (one parameter each, unnest). */
const CHUNK = 2000;

/** One parameter holding a whole array (drizzle would spread a bare array into a list of parameters). */
const arr = (values: readonly unknown[]) => sql.param(values);

/**
 * Which of these agents clash with the database (a name or a key already registered): the index
 * of the first clash and its code, or undefined. One statement per chunk (`= ANY($1)` on the
 * unique indexes). Inside the registering transaction, so a clash committed meanwhile is caught
 * by the unique indexes instead (see registerAgents).
 */
async function firstClash(tx: Tx, list: readonly ProvisionedAgent[]): Promise<{ index: number; code: ErrorCode } | undefined> {
  const takenNames = new Set<string>();
  const takenKids = new Set<string>();
  for (let i = 0; i < list.length; i += CHUNK) {
    const part = list.slice(i, i + CHUNK);
    const kids = part.flatMap((a) => [a.signingKey.kid, a.agreementKey.kid]);
    const rows = await tx.execute(sql`
      SELECT 'n' AS kind, name AS value FROM agents WHERE name = ANY(${arr(part.map((a) => a.name))}::text[])
      UNION ALL SELECT 'k', sig_kid FROM agent_keys WHERE sig_kid = ANY(${arr(kids)}::text[])
      UNION ALL SELECT 'k', kx_kid FROM agent_keys WHERE kx_kid = ANY(${arr(kids)}::text[])`);
    for (const r of rowsOf<{ kind: string; value: string }>(rows)) (r.kind === 'n' ? takenNames : takenKids).add(r.value);
  }
  for (let i = 0; i < list.length; i++) {
    const a = list[i]!;
    if (takenNames.has(a.name)) return { index: i, code: 'name_taken' };
    if (takenKids.has(a.signingKey.kid) || takenKids.has(a.agreementKey.kid)) return { index: i, code: 'request_invalid' };
  }
  return undefined;
}

/** Duplicates inside one list (names, signing or agreement keys): the later index and the earlier. */
function firstDuplicate(list: readonly ProvisionedAgent[]): { index: number; of: number } | undefined {
  const seen = new Map<string, number>();
  for (let i = 0; i < list.length; i++) {
    const a = list[i]!;
    for (const k of [`n:${a.name}`, `k:${a.signingKey.kid}`, `k:${a.agreementKey.kid}`]) {
      const of = seen.get(k);
      if (of !== undefined) return { index: i, of };
      seen.set(k, i);
    }
  }
  return undefined;
}

export interface Registration {
  /** When (ms) and for how long by default (seconds) the keys are valid. */
  now: number;
  ttlSeconds: number;
  random: (n: number) => Uint8Array;
}

/**
 * Inserts agents and their keys inside `tx`, one multi-row statement per table and chunk (columns
 * as arrays, unnest); returns their ids in order.
 */
export async function insertProvisioned(tx: Tx, list: readonly ProvisionedAgent[], r: Registration): Promise<string[]> {
  const ids = list.map(() => randomUuid(r.random));
  for (let i = 0; i < list.length; i += CHUNK) {
    const part = list.slice(i, i + CHUNK);
    const partIds = ids.slice(i, i + CHUNK);
    await tx.execute(sql`
      INSERT INTO agents (id, name, role, labels, status, cidr, created_at)
      SELECT id, name, role, labels::jsonb, 'active', cidr, to_timestamp(${r.now}::float8 / 1000.0)
      FROM unnest(${arr(partIds)}::text[], ${arr(part.map((a) => a.name))}::text[], ${arr(part.map((a) => a.role))}::text[],
                  ${arr(part.map((a) => JSON.stringify(a.labels)))}::text[], ${arr(part.map((a) => a.cidr))}::text[])
        AS t(id, name, role, labels, cidr)`);
    await tx.execute(sql`
      INSERT INTO agent_keys (agent_id, sig_kid, sig_pub, kx_kid, kx_pub, created_at, expires_at)
      SELECT agent_id, sig_kid, decode(sig_pub, 'hex'), kx_kid, decode(kx_pub, 'hex'), to_timestamp(${r.now}::float8 / 1000.0),
             to_timestamp(expires_at / 1000.0)
      FROM unnest(${arr(partIds)}::text[], ${arr(part.map((a) => a.signingKey.kid))}::text[], ${arr(part.map((a) => hex(a.signingKey.publicKey)))}::text[],
                  ${arr(part.map((a) => a.agreementKey.kid))}::text[], ${arr(part.map((a) => hex(a.agreementKey.publicKey)))}::text[],
                  ${arr(part.map((a) => a.expiresAt ?? r.now + r.ttlSeconds * 1000))}::float8[])
        AS t(agent_id, sig_kid, sig_pub, kx_kid, kx_pub, expires_at)`);
  }
  return ids;
}

/** A unique violation on insert (a clash committed by someone else meanwhile), as our error. */
export function clashOf(err: unknown): ApiError | undefined {
  const constraint = uniqueViolation(err);
  if (!constraint) return undefined;
  return constraint.includes('name')
    ? new ApiError('name_taken', 'an agent with this name exists')
    : new ApiError('request_invalid', 'these keys are already registered');
}

export interface ImportDeps {
  database: Database;
  ctx: ProtocolContext;
  /** The server's credential lifetime (seconds), for lines without `expiresAt`. */
  credentialTtlSeconds?: number | undefined;
}

export interface ImportResult {
  dryRun: boolean;
  /** Agents in the file (all registered, or all that would be). */
  count: number;
  /** SHA-256 of the file's bytes, hex: what the audit entry names. */
  sha256: string;
  agents: { line: number; name: string; role: Role; sigKid: string; id?: string }[];
}

/** Largest import: lines (blank lines aside). */
export const MAX_IMPORT_LINES = 100_000;

/**
 * An import (JSON lines), all or nothing: every line is checked first, then duplicates in the file,
 * then clashes with the database and the inserts in one transaction, with one audit entry holding
 * the count and the file's SHA-256. `dryRun` does every check and writes nothing.
 */
export async function importAgents(deps: ImportDeps, text: string, actor: string, dryRun: boolean): Promise<ImportResult> {
  const now = deps.ctx.now();
  const digest = hex(sha256(new TextEncoder().encode(text)));
  const list: ProvisionedAgent[] = [];
  const lineOf: number[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.trim();
    if (line === '') continue;
    if (list.length >= MAX_IMPORT_LINES) throw new ApiError('request_invalid', `more than ${MAX_IMPORT_LINES} agents in one import`);
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch {
      throw new ApiError('request_invalid', `line ${i + 1}: not JSON`);
    }
    try {
      list.push(parseProvisionedAgent(value, 'import', now));
    } catch (err) {
      if (err instanceof ProvisioningError) throw new ApiError(err.code, `line ${i + 1}: ${err.reason}`);
      throw err;
    }
    lineOf.push(i + 1);
  }
  if (list.length === 0) throw new ApiError('request_invalid', 'no agents in the file');
  const dup = firstDuplicate(list);
  if (dup) throw new ApiError('request_invalid', `line ${lineOf[dup.index]!}: name or key repeats line ${lineOf[dup.of]!}`);

  const ttlSeconds = deps.credentialTtlSeconds ?? DEFAULT_CREDENTIAL_TTL_SECONDS;
  const view = (ids?: string[]) =>
    list.map((a, i) => ({
      line: lineOf[i]!,
      name: a.name,
      role: a.role,
      sigKid: a.signingKey.kid,
      ...(ids ? { id: ids[i]! } : {}),
    }));
  const clashError = (c: { index: number; code: ErrorCode }) =>
    new ApiError(
      c.code,
      `line ${lineOf[c.index]!}: ${c.code === 'name_taken' ? 'an agent with this name exists' : 'these keys are already registered'}`,
    );
  try {
    return await deps.database.db.transaction(async (tx) => {
      const clash = await firstClash(tx, list);
      if (clash) throw clashError(clash);
      if (dryRun) return { dryRun, count: list.length, sha256: digest, agents: view() };
      const ids = await insertProvisioned(tx, list, { now, ttlSeconds, random: deps.ctx.random });
      await appendAudit(tx, {
        at: new Date(now),
        actor,
        action: 'agents.import',
        outcome: 'success',
        details: { count: list.length, sha256: digest },
      });
      return { dryRun, count: list.length, sha256: digest, agents: view(ids) };
    });
  } catch (err) {
    throw clashOf(err) ?? err;
  }
}

function hex(b: Uint8Array): string {
  return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
}
