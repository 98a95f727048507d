// Relay layers at the server (spec/PROTOCOL.md §11, server checks): every layer of a relayed object
// is verified from the outside in before the envelope inside is looked at. A layer's relay key must
// be registered, belong to an identity with role `relay`, in good standing (the one status rule,
// sender-rules.ts), sign the layer, and come with a credential this server issued for exactly that
// key. Nothing here is charged to the agent: what a relay gets wrong is paid for by the address that
// sent the request (services/ingest.ts).
//
// Relay status is read from the database once per request and relay key (RelayMemo), never kept
// across requests: a relay revocation takes effect on the relay's next request, on every instance.
import { b64u } from '../../protocol/bytes.js';
import { credentialKid } from '../../protocol/credential.js';
import { verifiedCredential } from '../../protocol/credential-cache.js';
import { ProtocolError, type ProtocolErrorCode } from '../../protocol/errors.js';
import { verifyLayerSignature, type RelayLayer, type RelayPath } from '../../protocol/relay.js';
import type { RelayHop } from '../../db/schema.js';
import type { Row } from '../../db/database.js';
import type { ProtocolContext } from '../../protocol/crypto/types.js';
import type { CredentialClaims } from '../../protocol/credential.js';
import type { Lru } from '../../protocol/lru.js';
import type { ServerIdentity } from '../identity.js';
import { budgetedLookup, type RateLimiter } from './rate-limiter.js';
import type { ServerKeys } from './server-keys.js';
import { senderRefusalSql } from './sender-rules.js';

/** What relay checks need of ingest's dependencies (services/ingest.ts passes its own). */
export interface RelayDeps {
  ctx: ProtocolContext;
  identity: ServerIdentity;
  keys: ServerKeys;
  limits: { sourceLookups: RateLimiter; relayCredentials: Lru<string, CredentialClaims> };
  relayLookup: (params: readonly unknown[]) => Promise<Row[]>;
}

/** A relay key as the database says at this request: its identity and public keys, or why it may not relay. */
export interface RelayFacts {
  agentId: string;
  name: string;
  sigPub: Uint8Array;
  kxPub: Uint8Array;
  refusal?: ProtocolErrorCode;
}

/** Per request: each relay key is looked up once (a batch of 100 from one relay costs one query). */
export type RelayMemo = Map<string, Promise<RelayFacts>>;

/** The relay key, its identity's role and name, and the one status rule, at time $2 (ms). */
export const RELAY_LOOKUP_SQL = `
  SELECT k.agent_id, ag.name, ag.role, k.sig_pub, k.kx_pub,
         ${senderRefusalSql({ agentStatus: 'ag.status', keyStatus: 'k.status', unexpired: 'k.expires_at > to_timestamp($2::float8 / 1000.0)', inOverlap: 'k.superseded_until > to_timestamp($2::float8 / 1000.0)' })} AS refusal
  FROM agent_keys k JOIN agents ag ON ag.id = k.agent_id
  WHERE k.sig_kid = $1::text`;

/**
 * Verifies every layer, outside in; returns the path to store (outer → inner). Throws the first
 * layer's refusal (ProtocolError, never with a receipt: the envelope inside was not judged).
 */
export async function verifyRelayPath(deps: RelayDeps, path: RelayPath, source: string, memo: RelayMemo): Promise<RelayHop[]> {
  const hops: RelayHop[] = [];
  for (const layer of path.layers) {
    const facts = await relayFacts(deps, layer.relay, source, memo);
    if (facts.refusal) throw new ProtocolError(facts.refusal);
    await verifyLayerSignature(deps.ctx, layer, facts.sigPub);
    await checkRelayCredential(deps, layer, facts);
    const hop: RelayHop = { relay: layer.relay, agentId: facts.agentId, name: facts.name, hop: layer.hop, rat: layer.rat };
    if (layer.src !== undefined) hop.src = layer.src;
    hops.push(hop);
  }
  return hops;
}

function relayFacts(deps: RelayDeps, kid: string, source: string, memo: RelayMemo): Promise<RelayFacts> {
  let p = memo.get(kid);
  if (!p) {
    p = lookUpRelay(deps, kid, source);
    memo.set(kid, p);
  }
  return p;
}

/**
 * One query per relay key and request. Lookups that find no usable relay are budgeted per source
 * address like unknown sender keys (budgetedLookup: spent only when no usable relay is found).
 */
async function lookUpRelay(deps: RelayDeps, kid: string, source: string): Promise<RelayFacts> {
  const rows = await budgetedLookup(
    deps.limits.sourceLookups,
    source,
    () => deps.relayLookup([kid, deps.ctx.now()]),
    ([found]) => found !== undefined && found.role === 'relay' && !found.refusal,
  );
  const row = rows[0];
  if (!row) throw new ProtocolError('key_unknown', 'the relay key is not registered');
  const facts: RelayFacts = {
    agentId: String(row.agent_id),
    name: String(row.name),
    sigPub: new Uint8Array(row.sig_pub as Uint8Array),
    kxPub: new Uint8Array(row.kx_pub as Uint8Array),
  };
  if (row.role !== 'relay') facts.refusal = 'relay_not_authorized';
  else if (row.refusal) facts.refusal = row.refusal as ProtocolErrorCode;
  return facts;
}

/**
 * The layer's `cred` (§7, §11): issued by this server under an accepted key set, unexpired, role
 * `relay`, naming the relay's identity and exactly its registered keys. A verified credential is
 * remembered (per process, by its text and issuer key, credential-cache.ts): expiry is judged at
 * every use, the issuer must still be an accepted key set, and the binding to the key is checked each time.
 */
async function checkRelayCredential(deps: RelayDeps, layer: RelayLayer, facts: RelayFacts): Promise<void> {
  const issuer = deps.keys.ring.bySigningKid(credentialKid(layer.cred)) ?? deps.identity;
  const claims = await verifiedCredential(deps.limits.relayCredentials, layer.cred, issuer.signing, issuer.fingerprint, deps.ctx.now());
  const cnf = claims.cnf;
  if (
    claims.role !== 'relay' ||
    claims.sub !== facts.agentId ||
    cnf.sig_kid !== layer.relay ||
    cnf.sig !== b64u(facts.sigPub) ||
    cnf.kx !== b64u(facts.kxPub)
  ) {
    throw new ProtocolError('credential_invalid');
  }
}
