// Key request on first contact (spec/PROTOCOL.md §20.2), Wazuh's "key request": a message from a
// signing key id nobody registered makes the server ask an external key source (a program or a Unix
// socket; the transport is the runtime's, src/runtime/key-source.ts) for that agent, register it if
// the answer is valid, and go on with the message. Everything else gets `key_unknown` as before.
//
// Not a denial-of-service amplifier:
//   - ingest asks only within the source address's budget of unknown-key lookups (ingest.ts);
//   - at most `maxInFlight` questions run at once, at most `maxWaiting` wait for a turn (for at most
//     the transport's deadline); beyond that the message gets `key_unknown` without a question;
//   - one question per kid at a time (single flight): concurrent messages share its outcome;
//   - a kid the source does not know, or answered wrongly for, is not asked again for `negativeTtlMs`.
// An answer is trusted only as far as it checks out: exactly the documented fields, the agent rules
// of an enrollment (provisioning.ts), a signing key whose id is the kid asked, a name nobody else
// has, and the message's source address inside the answer's `cidr`. Refusals are logged with their
// reason and audited; registrations are audited (actor `key-source`).
import type { ProtocolContext } from '../../protocol/crypto/types.js';
import { Lru } from '../../protocol/lru.js';
import type { Database } from '../../db/database.js';
import type { Logger } from '../logger.js';
import type { Telemetry } from '../telemetry.js';
import { appendAudit, appendAuditAlone } from './audit.js';
import { cidrContains, parseAddress, parseCidr } from './cidr.js';
import { clashOf, insertProvisioned, parseProvisionedAgent, ProvisioningError, type ProvisionedAgent } from './provisioning.js';
import { agentKeys, agents } from '../../db/schema.js';
import { eq, or } from 'drizzle-orm';
import { DEFAULT_CREDENTIAL_TTL_SECONDS } from '../lifetimes.js';

/** What a key source is asked: the signing key id, then (when that finds nothing) the source address. */
export type KeyQuestion = 'kid' | 'ip';

/** A failure of the transport itself (timeout, crash, output too large, socket down); `reason` is fixed text. */
export class KeySourceFailure extends Error {
  constructor(readonly reason: string) {
    super(reason);
  }
}

/** The runtime's way to ask (Node: a program and/or a Unix socket). Resolves with the raw answer. */
export interface KeySourceTransport {
  ask(question: KeyQuestion, value: string): Promise<string>;
}

export interface KeyRequestPolicy {
  /** Questions running at once, on this instance. */
  maxInFlight: number;
  /** Questions waiting for a turn; more are not asked (the message gets key_unknown). */
  maxWaiting: number;
  /** How long a wait for a turn may last (ms). */
  maxWaitMs: number;
  /** How long a kid the source did not know (or answered wrongly for) is not asked again (ms). */
  negativeTtlMs: number;
}

export const DEFAULT_KEY_REQUEST_POLICY: KeyRequestPolicy = { maxInFlight: 4, maxWaiting: 32, maxWaitMs: 2000, negativeTtlMs: 60_000 };

/** Per process (built by compose.ts): the transport, the turns, the flights and the negative cache. */
export interface KeyRequestState {
  transport: KeySourceTransport;
  policy: KeyRequestPolicy;
  running: number;
  waiting: (() => void)[];
  flights: Map<string, Promise<boolean>>;
  negative: Lru<string, number>;
}

export function createKeyRequestState(transport: KeySourceTransport, overrides: Partial<KeyRequestPolicy> = {}): KeyRequestState {
  return {
    transport,
    policy: { ...DEFAULT_KEY_REQUEST_POLICY, ...overrides },
    running: 0,
    waiting: [],
    flights: new Map(),
    negative: new Lru(65_536),
  };
}

export interface KeyRequestDeps {
  state: KeyRequestState;
  database: Database;
  ctx: ProtocolContext;
  logger: Logger;
  telemetry: Telemetry;
  credentialTtlSeconds?: number | undefined;
}

/**
 * Asks the key source about `kid` (a message from `source` named it and nobody registered it):
 * true once an agent with that signing key is registered (by this answer or meanwhile by another),
 * false otherwise. Never throws for the source's faults; a database fault propagates (503).
 */
export function requestKey(deps: KeyRequestDeps, kid: string, source: string): Promise<boolean> {
  const { state } = deps;
  const now = deps.ctx.now();
  const until = state.negative.get(kid);
  if (until !== undefined) {
    if (until > now) return Promise.resolve(false);
    state.negative.delete(kid);
  }
  const flying = state.flights.get(kid);
  if (flying) return flying;
  const flight = withTurn(deps, () => ask(deps, kid, source)).finally(() => state.flights.delete(kid));
  state.flights.set(kid, flight);
  return flight;
}

/** Runs `job` when one of the `maxInFlight` turns is free; false at once when too many wait. */
async function withTurn(deps: KeyRequestDeps, job: () => Promise<boolean>): Promise<boolean> {
  const { state } = deps;
  if (state.running >= state.policy.maxInFlight) {
    if (state.waiting.length >= state.policy.maxWaiting) {
      deps.telemetry.count('key_requests_total', { outcome: 'busy' });
      return false;
    }
    const got = await new Promise<boolean>((resolve) => {
      const wake = () => {
        clearTimeout(timer);
        resolve(true);
      };
      const timer = setTimeout(() => {
        const i = state.waiting.indexOf(wake);
        if (i >= 0) state.waiting.splice(i, 1);
        resolve(false);
      }, state.policy.maxWaitMs);
      state.waiting.push(wake);
    });
    if (!got) {
      deps.telemetry.count('key_requests_total', { outcome: 'busy' });
      return false;
    }
  } else state.running++;
  try {
    return await job();
  } finally {
    // Hand the turn to the next waiter, or give it back.
    const next = state.waiting.shift();
    if (next) next();
    else state.running--;
  }
}

type Answer = { found: false } | { found: true; data: unknown };

/**
 * The answer format (Wazuh's): {"error":0,"data":{...}} or {"error":N,"message":"..."} with N ≠ 0,
 * nothing else. Throws KeySourceFailure for anything else.
 */
export function parseKeySourceAnswer(text: string): Answer {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    throw new KeySourceFailure('answer is not JSON');
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new KeySourceFailure('answer is not a JSON object');
  const o = v as Record<string, unknown>;
  const keys = Object.keys(o);
  if (!Number.isInteger(o.error)) throw new KeySourceFailure('answer has no integer "error"');
  if (o.error === 0) {
    if (keys.length !== 2 || !('data' in o)) throw new KeySourceFailure('answer with error 0 must have exactly "error" and "data"');
    return { found: true, data: o.data };
  }
  if (keys.some((k) => k !== 'error' && k !== 'message') || (o.message !== undefined && typeof o.message !== 'string'))
    throw new KeySourceFailure('answer with an error must have only "error" and a string "message"');
  return { found: false };
}

async function ask(deps: KeyRequestDeps, kid: string, source: string): Promise<boolean> {
  const started = performance.now();
  let question: KeyQuestion = 'kid';
  try {
    let answer = parseKeySourceAnswer(await deps.state.transport.ask('kid', kid));
    if (!answer.found && parseAddress(source)) {
      question = 'ip';
      answer = parseKeySourceAnswer(await deps.state.transport.ask('ip', source));
    }
    if (!answer.found) {
      deps.state.negative.set(kid, deps.ctx.now() + deps.state.policy.negativeTtlMs);
      deps.telemetry.count('key_requests_total', { outcome: 'not_found' });
      deps.logger.debug({ sigKid: kid, sourceAddr: source }, 'key source does not know this key');
      return false;
    }
    const agent = checkAnswer(answer.data, kid, source, deps.ctx.now());
    const registered = await register(deps, agent, kid, source, question);
    deps.telemetry.count('key_requests_total', { outcome: 'registered' });
    deps.logger.info(
      { sigKid: kid, sourceAddr: source, name: agent.name, ms: Math.round(performance.now() - started), question, registered },
      'agent registered by the key source',
    );
    return true;
  } catch (err) {
    if (!(err instanceof KeySourceFailure)) throw err;
    deps.state.negative.set(kid, deps.ctx.now() + deps.state.policy.negativeTtlMs);
    deps.telemetry.count('key_requests_total', { outcome: 'refused' });
    deps.logger.warn({ sigKid: kid, sourceAddr: source, question, reason: err.reason }, 'key source answer refused');
    await appendAuditAlone(deps.database.db, {
      at: new Date(deps.ctx.now()),
      actor: 'key-source',
      action: 'agent.key-request',
      outcome: 'failure',
      code: 'key_unknown',
      sourceAddr: source,
      details: { sigKid: kid, question, reason: err.reason },
    }).catch((auditErr: unknown) => deps.logger.error({ err: String(auditErr) }, 'audit append failed'));
    return false;
  }
}

/** The answer's data as an agent, if it is one, for this kid, from this address. */
function checkAnswer(data: unknown, kid: string, source: string, now: number): ProvisionedAgent {
  let agent: ProvisionedAgent;
  try {
    agent = parseProvisionedAgent(data, 'answer', now);
  } catch (err) {
    if (err instanceof ProvisioningError) throw new KeySourceFailure(`data: ${err.reason}`);
    throw err;
  }
  if (agent.signingKey.kid !== kid) throw new KeySourceFailure('signingKey is not the key asked for');
  if (agent.cidr !== null && !cidrContains(parseCidr(agent.cidr)!, source)) throw new KeySourceFailure('source address outside cidr');
  return agent;
}

/**
 * Registers the agent in one transaction with its audit entry. A key registered meanwhile (another
 * instance, an import) to an agent of that name is success ('already'); a name or key held by
 * another agent is a refusal.
 */
async function register(
  deps: KeyRequestDeps,
  agent: ProvisionedAgent,
  kid: string,
  source: string,
  question: KeyQuestion,
): Promise<string> {
  const now = deps.ctx.now();
  try {
    return await deps.database.db.transaction(async (tx) => {
      const held = await tx
        .select({ name: agents.name, sigKid: agentKeys.sigKid, kxKid: agentKeys.kxKid })
        .from(agentKeys)
        .innerJoin(agents, eq(agents.id, agentKeys.agentId))
        .where(or(eq(agentKeys.sigKid, kid), eq(agentKeys.kxKid, agent.agreementKey.kid), eq(agents.name, agent.name)));
      const [named] = await tx.select({ id: agents.id }).from(agents).where(eq(agents.name, agent.name)).limit(1);
      if (held.some((h) => h.sigKid === kid && h.name === agent.name)) return 'already';
      if (named) throw new KeySourceFailure('name taken by another agent');
      if (held.length) throw new KeySourceFailure('keys registered to another agent');
      const [id] = await insertProvisioned(tx, [agent], {
        now,
        ttlSeconds: deps.credentialTtlSeconds ?? DEFAULT_CREDENTIAL_TTL_SECONDS,
        random: deps.ctx.random,
      });
      await appendAudit(tx, {
        at: new Date(now),
        actor: 'key-source',
        action: 'agent.key-request',
        outcome: 'success',
        sourceAddr: source,
        agentId: id!,
        details: { name: agent.name, role: agent.role, sigKid: kid, kxKid: agent.agreementKey.kid, question, cidr: agent.cidr },
      });
      return 'registered';
    });
  } catch (err) {
    const clash = clashOf(err);
    if (clash) {
      // Lost a race: the same key registered meanwhile (another instance asked too) is a success.
      const [again] = await deps.database.db.select({ id: agentKeys.id }).from(agentKeys).where(eq(agentKeys.sigKid, kid)).limit(1);
      if (again) return 'already';
    }
    if (clash) throw new KeySourceFailure(clash.code === 'name_taken' ? 'name taken by another agent' : 'keys registered to another agent');
    throw err;
  }
}
