// The one drizzle schema. Tables carry no schema qualifier: the connection's search_path picks the
// schema, which is how tests isolate themselves (one schema per test) on a shared database.
// Changing this file means `npm run db:generate` and committing the new file under migrations/.
import { sql } from 'drizzle-orm';
import {
  bigint,
  bigserial,
  boolean,
  check,
  customType,
  index,
  integer,
  jsonb,
  pgTable,
  primaryKey,
  smallint,
  text,
  timestamp,
  uniqueIndex,
} from 'drizzle-orm/pg-core';
import type { SignedObject } from '../protocol/signed.js';

/** Raw bytes (hashes, public keys, message ids) as Uint8Array on both drivers. */
export const bytea = customType<{ data: Uint8Array; driverData: Uint8Array }>({
  dataType: () => 'bytea',
  fromDriver: (v) => new Uint8Array(v.buffer, v.byteOffset, v.byteLength),
  toDriver: (v) => v,
});

const ts = (name: string) => timestamp(name, { withTimezone: true, mode: 'date' });

/** Admin API credentials: the bootstrap one (scope `*`) and keys admins create. Only hashes are kept. */
export const adminKeys = pgTable('admin_keys', {
  id: text('id').primaryKey(),
  name: text('name').notNull(),
  secretHash: bytea('secret_hash').notNull(),
  scopes: jsonb('scopes').$type<string[]>().notNull(),
  createdAt: ts('created_at').notNull().defaultNow(),
  createdBy: text('created_by'),
  revokedAt: ts('revoked_at'),
  lastUsedAt: ts('last_used_at'),
});

/** Enrollment tokens. `secretHash` is SHA-256 over a domain label and the secret (spec: token). */
export const enrollmentTokens = pgTable('enrollment_tokens', {
  id: text('id').primaryKey(),
  secretHash: bytea('secret_hash').notNull(),
  role: text('role').$type<'agent' | 'relay'>().notNull(),
  usesTotal: integer('uses_total').notNull(),
  usesLeft: integer('uses_left').notNull(),
  expiresAt: ts('expires_at').notNull(),
  createdAt: ts('created_at').notNull().defaultNow(),
  createdBy: text('created_by'),
  revokedAt: ts('revoked_at'),
  cidr: text('cidr'),
  namePattern: text('name_pattern'),
  labels: jsonb('labels').$type<Record<string, string>>().notNull().default({}),
  /** Lifetime of the keys and credentials of agents enrolled with this token; null: the server's default. */
  credentialTtlSeconds: integer('credential_ttl_seconds'),
});

/** One row per successful use of a token, so "token already used" can be investigated. */
export const tokenUses = pgTable(
  'token_uses',
  {
    id: bigserial('id', { mode: 'number' }).primaryKey(),
    tokenId: text('token_id')
      .notNull()
      .references(() => enrollmentTokens.id),
    agentId: text('agent_id').notNull(),
    usedAt: ts('used_at').notNull().defaultNow(),
    sourceAddr: text('source_addr'),
  },
  (t) => [index('token_uses_token_idx').on(t.tokenId)],
);

export const agents = pgTable(
  'agents',
  {
    id: text('id').primaryKey(),
    name: text('name').notNull().unique(),
    role: text('role').$type<'agent' | 'relay'>().notNull(),
    labels: jsonb('labels').$type<Record<string, string>>().notNull().default({}),
    status: text('status').$type<'active' | 'revoked'>().notNull().default('active'),
    tokenId: text('token_id'),
    createdAt: ts('created_at').notNull().defaultNow(),
    revokedAt: ts('revoked_at'),
    lastSeenAt: ts('last_seen_at'),
    sendIntervalSeconds: integer('send_interval_seconds'),
    /** Lifetime of this agent's keys and credentials (from its token); null: the server's default. */
    credentialTtlSeconds: integer('credential_ttl_seconds'),
    /** An admin asked this agent to renew (`renewNow` in its next receipt); cleared by its renewal. */
    renewRequestedAt: ts('renew_requested_at'),
    /**
     * The agent's stored-bytes budget (spec/PROTOCOL.md §8, step 11), shared by every instance: bytes of
     * stored inventory counted against it as of `byteBudgetUsedAt`, draining at the ingest policy's
     * refill rate. Written only by the storing statement, for messages it actually stores.
     */
    byteBudgetUsed: bigint('byte_budget_used', { mode: 'number' }).notNull().default(0),
    byteBudgetUsedAt: ts('byte_budget_used_at'),
    /** The relay path (spec §11) of this agent's last stored message, outer → inner; [] when it came directly. */
    lastPath: jsonb('last_path').$type<RelayHop[]>(),
    /** The relay (innermost layer's identity) this agent's messages last came through; null if never relayed. */
    lastRelayId: text('last_relay_id'),
    /**
     * Externally provisioned agents (spec §20: import, key request) may be bound to a source network:
     * their messages are accepted only from addresses inside it. Null: any address (enrolled agents,
     * whose token's cidr constrained the enrollment only).
     */
    cidr: text('cidr'),
    /**
     * `legacy`: a GLPI, FusionInventory or OCS agent heard by a relay's legacy listener (spec §11.2),
     * with no keys: its id and name are `legacyAgentId(legacyId)`. `replacedBy`: the enrolled agent
     * that took over its history (`latchkey agents adopt`); later legacy inventories go there too.
     */
    kind: text('kind').$type<'enrolled' | 'legacy'>().notNull().default('enrolled'),
    legacyId: text('legacy_id'),
    legacyProtocol: text('legacy_protocol'),
    replacedBy: text('replaced_by'),
  },
  // Keyset pagination (services/page.ts) walks (created_at, id); the console's label filter is a
  // jsonb containment (`labels @> {"k":"v"}`), which the GIN index answers at 100,000 agents.
  (t) => [index('agents_created_idx').on(t.createdAt, t.id), index('agents_labels_idx').using('gin', t.labels)],
);

/** What a legacy-origin inventory records about where it came from (spec §11.2). */
export interface LegacyMeta {
  id: string;
  protocol: 'glpi-json' | 'fusion-xml' | 'ocs-xml';
  cty: 'application/json' | 'application/xml';
}

/** One verified relay layer of a stored message (spec §11), as stored and shown to admins. */
export interface RelayHop {
  /** The relay's Ed25519 key id. */
  relay: string;
  /** The relay's identity (agents.id) and name. */
  agentId: string;
  name: string;
  hop: number;
  /** The relay's received-at, ms since the epoch (its clock). */
  rat: number;
  src?: string;
}

/**
 * An agent's key set: one Ed25519 signing key and one X25519 agreement key, introduced together at
 * enrollment or renewal. `sigKid` is what envelope headers name as the sender.
 * `maxCounter` is the highest counter accepted so far (replay window, spec: freshness).
 */
export const agentKeys = pgTable(
  'agent_keys',
  {
    id: bigserial('id', { mode: 'number' }).primaryKey(),
    agentId: text('agent_id')
      .notNull()
      .references(() => agents.id),
    sigKid: text('sig_kid').notNull(),
    sigPub: bytea('sig_pub').notNull(),
    kxKid: text('kx_kid').notNull(),
    kxPub: bytea('kx_pub').notNull(),
    status: text('status').$type<'active' | 'superseded' | 'revoked'>().notNull().default('active'),
    createdAt: ts('created_at').notNull().defaultNow(),
    expiresAt: ts('expires_at').notNull(),
    revokedAt: ts('revoked_at'),
    maxCounter: bigint('max_counter', { mode: 'number' }).notNull().default(0),
    /** Renewal (spec §12): the key that replaced this one, and until when this one is still accepted. */
    replacedBy: text('replaced_by'),
    supersededAt: ts('superseded_at'),
    supersededUntil: ts('superseded_until'),
    /** The credential issued for this key (not a secret: it names public keys), so a repeated renewal gets the same answer. */
    credential: text('credential'),
  },
  (t) => [
    uniqueIndex('agent_keys_sig_kid_idx').on(t.sigKid),
    uniqueIndex('agent_keys_kx_kid_idx').on(t.kxKid),
    index('agent_keys_agent_idx').on(t.agentId),
  ],
);

/** Replay records: a message id is accepted at most once per sender key. */
export const seenMessages = pgTable(
  'seen_messages',
  {
    sigKid: text('sig_kid').notNull(),
    messageId: bytea('message_id').notNull(),
    counter: bigint('counter', { mode: 'number' }).notNull(),
    receivedAt: ts('received_at').notNull().defaultNow(),
    /** The envelope binding (§10 `env`, 32 bytes) of the accepted copy: GET /v1/receipts signs it again. */
    env: bytea('env'),
  },
  (t) => [primaryKey({ columns: [t.sigKid, t.messageId] }), index('seen_messages_received_idx').on(t.receivedAt)],
);

/** Every accepted inventory, as received (jsonb keeps unknown fields). */
export const inventories = pgTable(
  'inventories',
  {
    id: bigserial('id', { mode: 'number' }).primaryKey(),
    agentId: text('agent_id')
      .notNull()
      .references(() => agents.id),
    messageId: bytea('message_id').notNull(),
    receivedAt: ts('received_at').notNull().defaultNow(),
    size: integer('size').notNull(),
    content: jsonb('content').notNull(),
    /** The verified relay path (spec §11), outer → inner; [] for a message sent directly. */
    path: jsonb('path')
      .$type<RelayHop[]>()
      .notNull()
      .default(sql`'[]'::jsonb`),
    /** Legacy origin (spec §11.2): the legacy agent's id, protocol and body type; null for sealed agents' own. */
    legacy: jsonb('legacy').$type<LegacyMeta>(),
    /** The legacy agent's XML exactly as it sent it (decompressed), beside `content`, its GLPI JSON mapping. */
    raw: text('raw'),
  },
  (t) => [index('inventories_agent_received_idx').on(t.agentId, t.receivedAt.desc())],
);

/**
 * GLPI forwarding targets (README "Forwarding to GLPI"). `id` is derived from the URL without its
 * credentials (src/server/services/forward-outbox.ts `targetIdOf`); `url` is kept without them too:
 * passwords and client keys live only in the configuration of the instances that deliver. The set
 * of active targets is the one the most recently started `latchkey serve` was given.
 */
export const forwardTargets = pgTable('forward_targets', {
  id: text('id').primaryKey(),
  url: text('url').notNull(),
  active: boolean('active').notNull().default(true),
  createdAt: ts('created_at').notNull().defaultNow(),
  removedAt: ts('removed_at'),
  deliveredTotal: bigint('delivered_total', { mode: 'number' }).notNull().default(0),
  lastDeliveredAt: ts('last_delivered_at'),
  /** The last delivery failure, as a short fixed phrase (never a URL, a credential or a response body). */
  lastError: text('last_error'),
  lastErrorAt: ts('last_error_at'),
});

/**
 * The transactional outbox: one row per stored inventory and active target, written by the statement
 * that stores the inventory (store-batcher.ts), deleted once the target accepted it. Delivered in
 * order per (target, agent) by `inventory_id`; a row is claimed with a lease (`lease_owner`,
 * `lease_until`) under FOR UPDATE SKIP LOCKED, so one instance delivers it at a time.
 * Retention removes an inventory's rows with it (cascade); a removed target's rows are dropped.
 */
export const forwardOutbox = pgTable(
  'forward_outbox',
  {
    id: bigserial('id', { mode: 'number' }).primaryKey(),
    targetId: text('target_id')
      .notNull()
      .references(() => forwardTargets.id, { onDelete: 'cascade' }),
    agentId: text('agent_id').notNull(),
    inventoryId: bigint('inventory_id', { mode: 'number' })
      .notNull()
      .references(() => inventories.id, { onDelete: 'cascade' }),
    createdAt: ts('created_at').notNull().defaultNow(),
    attempts: integer('attempts').notNull().default(0),
    nextAttemptAt: ts('next_attempt_at').notNull().defaultNow(),
    leaseOwner: text('lease_owner'),
    leaseUntil: ts('lease_until'),
    lastError: text('last_error'),
  },
  (t) => [
    uniqueIndex('forward_outbox_order_idx').on(t.targetId, t.agentId, t.inventoryId),
    index('forward_outbox_due_idx').on(t.targetId, t.nextAttemptAt),
    index('forward_outbox_inventory_idx').on(t.inventoryId),
  ],
);

/** Revocations of tokens, keys and agents; `id` doubles as the revocation list version. */
export const revocations = pgTable(
  'revocations',
  {
    id: bigserial('id', { mode: 'number' }).primaryKey(),
    kind: text('kind').$type<'token' | 'key' | 'agent'>().notNull(),
    subject: text('subject').notNull(),
    at: ts('at').notNull().defaultNow(),
    reason: text('reason'),
    actor: text('actor'),
  },
  (t) => [uniqueIndex('revocations_subject_idx').on(t.kind, t.subject)],
);

/**
 * Append-only, hash-chained audit log. `hash` = SHA-256(prev_hash || canonical entry bytes);
 * appends serialise on the one row of audit_head so the chain never forks.
 */
export const auditLog = pgTable(
  'audit_log',
  {
    seq: bigint('seq', { mode: 'number' }).primaryKey(),
    at: ts('at').notNull(),
    actor: text('actor').notNull(),
    action: text('action').notNull(),
    outcome: text('outcome').$type<'success' | 'failure'>().notNull(),
    code: text('code'),
    sourceAddr: text('source_addr'),
    tokenId: text('token_id'),
    agentId: text('agent_id'),
    details: jsonb('details')
      .$type<Record<string, unknown>>()
      .notNull()
      .default(sql`'{}'::jsonb`),
    prevHash: bytea('prev_hash').notNull(),
    hash: bytea('hash').notNull(),
  },
  (t) => [index('audit_log_at_idx').on(t.at)],
);

/**
 * The audit chain's head: one row (id 1), the last entry's seq, prev_hash and hash. Every append
 * advances it in the statement that inserts the entry (services/audit.ts): the UPDATE waits for the
 * row and then reads its newest version, so concurrent appends on any instance extend one chain,
 * and the row is held only until the appending transaction ends (one statement, for an enrollment).
 * Rows deleted from audit_log do not move it back: the next entry still links to the deleted head.
 */
export const auditHead = pgTable(
  'audit_head',
  {
    id: smallint('id').primaryKey(),
    seq: bigint('seq', { mode: 'number' }).notNull(),
    prevHash: bytea('prev_hash').notNull(),
    hash: bytea('hash').notNull(),
  },
  (t) => [check('audit_head_one_row', sql`${t.id} = 1`)],
);

/**
 * Server key rotation (spec §14): each `server-key-endorsement` (public; no private key ever enters
 * the database), signed by the key set `from_fingerprint` and endorsing `to_fingerprint`. The chain
 * a server publishes is walked back from its current fingerprint, so one key set is endorsed once.
 */
export const serverKeyEndorsements = pgTable('server_key_endorsements', {
  toFingerprint: text('to_fingerprint').primaryKey(),
  fromFingerprint: text('from_fingerprint').notNull(),
  endorsement: jsonb('endorsement').$type<SignedObject>().notNull(),
  createdAt: ts('created_at').notNull().defaultNow(),
});

/**
 * Admin console sessions (src/server/console): only SHA-256 of the session id is kept. A session
 * belongs to the admin key it was opened with and ends at `expiresAt` (absolute), after
 * `idleSeconds` without a request, at sign-out, or when its admin key is revoked (`revokedAt`).
 * `csrfSecret` is the synchroniser token every console form carries.
 */
export const consoleSessions = pgTable(
  'console_sessions',
  {
    idHash: bytea('id_hash').primaryKey(),
    adminKeyId: text('admin_key_id')
      .notNull()
      .references(() => adminKeys.id),
    csrfSecret: bytea('csrf_secret').notNull(),
    createdAt: ts('created_at').notNull(),
    lastUsedAt: ts('last_used_at').notNull(),
    expiresAt: ts('expires_at').notNull(),
    revokedAt: ts('revoked_at'),
    sourceAddr: text('source_addr'),
  },
  (t) => [index('console_sessions_admin_key_idx').on(t.adminKeyId)],
);
