// The relay's composition root: every piece of per-process state (identity, spool, revocation list,
// forwarder, metrics) is built here once and handed down. `startRelay` (node.ts) binds it to a port.
import { writeFile, rename } from 'node:fs/promises';
import { join } from 'node:path';
import type { Context } from 'hono';
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import type { ProtocolContext } from '../protocol/crypto/types.js';
import { credentialKid } from '../protocol/credential.js';
import { loadRevocations, refreshRevocations, type HeldList } from '../agent/revocations.js';
import { agentRenewDueAt, renewAgent, renewalInProgress } from '../agent/renew.js';
import { loadState, type AgentState } from '../agent/state.js';
import type { Logger } from '../server/logger.js';
import { createRelayApp } from './app.js';
import { Forwarder, type RelayIdentity } from './forwarder.js';
import { RelayServerKeys } from './server-keys.js';
import { Spool } from './spool.js';
import { sealEnvelope } from '../protocol/envelope.js';
import { nextCounter } from '../agent/state.js';
import type { Cidr } from '../server/services/cidr.js';
import { createLegacyApp } from './legacy/listener.js';
import { Lru } from '../protocol/lru.js';

export interface RelayConfig {
  stateDir: string;
  upstream: string;
  spoolMaxBytes: number;
  /** How long POST /v1/messages waits for the server's receipt before answering "queued". */
  receiptWaitMs: number;
  /** How often the signed revocation list is polled from upstream. */
  revocationIntervalMs: number;
  /** The legacy listener's trusted networks (`--legacy-trust`, spec §11.2); undefined: no legacy listener. */
  legacyTrust?: Cidr[] | undefined;
}

export const STATUS_FILE = 'relay-status.json';

/** What `latchkey relay status` reads: the running relay's counters, written every few seconds. */
export interface RelayCounters {
  accepted: number;
  refused: Record<string, number>;
  forwarded: Record<string, number>;
  upstreamRefused: Record<string, number>;
  expired: number;
  legacy?: { accepted: Record<string, number>; refused: Record<string, number> };
}

export async function composeRelay(
  ctx: ProtocolContext,
  config: RelayConfig,
  logger: Logger,
  clientAddress: (c: Context) => string | undefined,
) {
  let state: AgentState = await loadState(ctx.crypto, config.stateDir);
  const identity = (): RelayIdentity => ({
    privateKey: state.keys.signing.privateKey,
    kid: state.keys.signing.kid,
    credential: state.agent.credential,
  });
  const spool = await Spool.open(config.stateDir, config.spoolMaxBytes);
  const keys = await RelayServerKeys.open(ctx, () => state, config.upstream, logger);
  // The last verified list, from disk: applied from the first request, even with upstream down.
  let revocations: HeldList = await loadRevocations(config.stateDir);
  /** Age of the list held (since it last verified, this host's clock), and whether polling has fallen behind. */
  const revocationAge = () => {
    const ageSeconds = revocations.checkedAt === 0 ? null : Math.max(0, (ctx.now() - revocations.checkedAt) / 1000);
    return {
      version: revocations.version,
      ageSeconds: ageSeconds === null ? null : Math.round(ageSeconds),
      stale: ageSeconds === null || ageSeconds * 1000 > staleAfterMs(config.revocationIntervalMs),
    };
  };

  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'latchkey_relay_' });
  const counters: RelayCounters = { accepted: 0, refused: {}, forwarded: {}, upstreamRefused: {}, expired: 0 };
  const accepted = new Counter({
    name: 'latchkey_relay_accepted_total',
    help: 'Envelopes spooled (acknowledged to the sender).',
    registers: [registry],
  });
  const refused = new Counter({
    name: 'latchkey_relay_refused_total',
    help: 'Envelopes the relay refused, by code.',
    labelNames: ['code'],
    registers: [registry],
  });
  const forwarded = new Counter({
    name: 'latchkey_relay_forwarded_total',
    help: "Envelopes settled by the server's signed receipt, by outcome (accepted or the rejection code).",
    labelNames: ['outcome'],
    registers: [registry],
  });
  const upstreamRefused = new Counter({
    name: 'latchkey_relay_upstream_refused_total',
    help: 'Envelopes upstream refused without a receipt (moved to refused/), by code.',
    labelNames: ['code'],
    registers: [registry],
  });
  const expired = new Counter({
    name: 'latchkey_relay_expired_total',
    help: 'Envelopes moved to expired/ (past the freshness window).',
    registers: [registry],
  });
  const bump = (m: Record<string, number>, k: string) => (m[k] = (m[k] ?? 0) + 1);
  new Gauge({
    name: 'latchkey_relay_spool_depth',
    help: 'Envelopes waiting in the spool.',
    registers: [registry],
    collect() {
      this.set(spool.stats().depth);
    },
  });
  new Gauge({
    name: 'latchkey_relay_spool_bytes',
    help: 'Bytes in the spool.',
    registers: [registry],
    collect() {
      this.set(spool.stats().bytes);
    },
  });
  new Gauge({
    name: 'latchkey_relay_oldest_message_age_seconds',
    help: 'Age of the oldest spooled envelope (0 when empty).',
    registers: [registry],
    collect() {
      const oldest = spool.stats().oldestRat;
      this.set(oldest === undefined ? 0 : (ctx.now() - oldest) / 1000);
    },
  });

  new Gauge({
    name: 'latchkey_relay_revocation_list_age_seconds',
    help: 'Seconds since the revocation list held last verified from upstream; -1 when none ever did.',
    registers: [registry],
    collect() {
      this.set(revocationAge().ageSeconds ?? -1);
    },
  });
  new Gauge({
    name: 'latchkey_relay_revocation_list_stale',
    help: 'Whether the revocation list held is older than three polling intervals (1) or fresh (0).',
    registers: [registry],
    collect() {
      this.set(revocationAge().stale ? 1 : 0);
    },
  });
  new Gauge({
    name: 'latchkey_relay_revocation_list_version',
    help: 'Version of the signed revocation list held.',
    registers: [registry],
    collect() {
      this.set(revocations.version);
    },
  });

  const forwarder = new Forwarder({
    ctx,
    spool,
    upstream: config.upstream,
    identity,
    keys,
    logger,
    count: (name, label) => {
      if (name === 'forwarded') {
        forwarded.inc({ outcome: label });
        bump(counters.forwarded, label);
      } else if (name === 'expired') {
        expired.inc();
        counters.expired++;
      } else {
        upstreamRefused.inc({ code: label });
        bump(counters.upstreamRefused, label);
      }
    },
  });
  const app = createRelayApp({
    admission: { ctx, keys, revocations: () => revocations, credentials: new Lru(4096) },
    revocationAge,
    spool,
    forwarder,
    upstream: config.upstream,
    identity,
    logger,
    receiptWaitMs: config.receiptWaitMs,
    clientAddress,
    metrics: async () => ({ contentType: registry.contentType, body: await registry.metrics() }),
    count: (name, label) => {
      if (name === 'accepted') {
        accepted.inc();
        counters.accepted++;
      } else {
        refused.inc({ code: label });
        bump(counters.refused, label);
      }
    },
  });

  /** The relay's own sealed, signed inventory envelope (legacy origin, §11.2): its keys, counter and credential. */
  const sealOwn = async (contentType: string, gzipped: Uint8Array) =>
    (
      await sealEnvelope(ctx, {
        sender: state.keys,
        recipient: state.server.agreement,
        type: 'inventory',
        contentType,
        contentEncoding: 'gzip',
        counter: await nextCounter(config.stateDir, ctx.now()),
        plaintext: gzipped,
        credential: state.agent.credential,
      })
    ).envelope;
  let legacyApp: ReturnType<typeof createLegacyApp> | undefined;
  if (config.legacyTrust) {
    const legacyCounters = { accepted: {}, refused: {} };
    counters.legacy = legacyCounters;
    const legacyTotal = new Counter({
      name: 'latchkey_relay_legacy_requests_total',
      help: 'Legacy listener: inventories spooled (outcome accepted, by protocol) and requests refused (by code).',
      labelNames: ['outcome', 'label'],
      registers: [registry],
    });
    legacyApp = createLegacyApp({
      trust: config.legacyTrust,
      seal: sealOwn,
      spool,
      kick: () => forwarder.kick(),
      now: ctx.now,
      logger,
      clientAddress,
      count: (outcome, label) => {
        legacyTotal.inc({ outcome, label });
        bump(legacyCounters[outcome], label);
      },
    });
  }

  const pollRevocations = async () => {
    // Server keys first: after a rotation the list is signed by the new key.
    await keys.refresh();
    try {
      const r = await refreshRevocations(ctx, config.stateDir, { via: config.upstream });
      revocations = r.held;
      if (r.added.length) logger.info({ version: r.held.version, added: r.added.length }, 'relay: revocation list updated');
    } catch (err) {
      logger.warn({ code: (err as { code?: string }).code }, 'relay: revocation list not refreshed');
    }
  };
  /** The relay renews its own keys and credential like an agent (spec §12), through upstream. */
  const renewIfDue = async () => {
    // Also when the pin moved past the key set that issued our credential (§14): it stops verifying
    // once the server drops that set.
    const movedOn = credentialKid(state.agent.credential) !== state.server.signing.kid;
    if (!movedOn && ctx.now() < agentRenewDueAt(state) && !(await renewalInProgress(config.stateDir))) return;
    try {
      const out = await renewAgent(ctx, config.stateDir, { via: config.upstream });
      state = await loadState(ctx.crypto, config.stateDir);
      logger.info({ keyId: out.sigKid, expiresAt: new Date(out.agent.expiresAt).toISOString() }, 'relay renewed');
    } catch (err) {
      logger.warn({ code: (err as { code?: string }).code }, 'relay: renewal failed; retrying later');
    }
  };
  const writeStatus = async () => {
    const tmp = join(config.stateDir, `.${STATUS_FILE}.tmp`);
    await writeFile(tmp, JSON.stringify({ v: 1, pid: process.pid, upstream: config.upstream, updatedAt: ctx.now(), counters }), {
      mode: 0o600,
    });
    await rename(tmp, join(config.stateDir, STATUS_FILE));
  };

  const timers: NodeJS.Timeout[] = [];
  return {
    app,
    legacyApp,
    keys,
    spool,
    forwarder,
    identity,
    async start() {
      await pollRevocations();
      await renewIfDue();
      forwarder.start();
      timers.push(setInterval(() => void renewIfDue(), 600_000));
      timers.push(setInterval(() => void pollRevocations().then(renewIfDue), config.revocationIntervalMs));
      timers.push(setInterval(() => void writeStatus().catch(() => {}), 2000));
      timers.push(setInterval(() => void spool.pruneReceipts(ctx.now(), 8 * 86_400_000).catch(() => {}), 3600_000));
      for (const t of timers) t.unref();
      await writeStatus();
    },
    async stop() {
      for (const t of timers) clearInterval(t);
      await forwarder.stop();
      await writeStatus().catch(() => {});
    },
    /** Reloads the identity (after a renewal). */
    async reload() {
      state = await loadState(ctx.crypto, config.stateDir);
    },
  };
}

/** A list not refreshed for three polls is stale: the relay says so, and keeps going (§11.1). */
export function staleAfterMs(revocationIntervalMs: number): number {
  return 3 * revocationIntervalMs;
}
