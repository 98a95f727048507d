// What a relay checks before it spools anything (spec/PROTOCOL.md §11), without opening it: shape,
// the layers of relays below it (each relay's credential verified with the pinned server key, role
// `relay`, not revoked, its signature), the hop limit, then the innermost envelope: its attached
// credential (`cred`, verified with the server key set that issued it, among those trusted (server-keys.ts): signature, issuer, expiry, role `agent`,
// naming the envelope's sender key), the current signed revocation list, the sender's signature,
// and the freshness window. An envelope without `cred` cannot be checked: `credential_invalid`.
import { fromB64uExact } from '../protocol/bytes.js';
import { credentialKid, type CredentialClaims } from '../protocol/credential.js';
import { verifiedCredential, type CredentialCache } from '../protocol/credential-cache.js';
import type { ProtocolContext } from '../protocol/crypto/types.js';
import { DEFAULT_FRESHNESS, parseEnvelope, verifyEnvelopeSignature, type ParsedEnvelope } from '../protocol/envelope.js';
import { ProtocolError } from '../protocol/errors.js';
import type { HeldRevocations } from '../protocol/revocation-list.js';
import { envelopeBinding } from '../protocol/receipt.js';
import { isRelayed, MAX_RELAY_HOPS, relayLayers, verifyLayerSignature, type RelayLayer } from '../protocol/relay.js';
import type { RelayServerKeys } from './server-keys.js';
import type { SpoolRecord } from './spool.js';

export interface AdmissionDeps {
  ctx: ProtocolContext;
  /** The server key sets this relay trusts: its pin, and the sets it left behind still accepted (§14). */
  keys: RelayServerKeys;
  revocations: () => HeldRevocations;
  /** Credentials verified, by text and issuer (credential-cache.ts): expiry and revocation still judged at every use. */
  credentials: CredentialCache;
}

/** Checks one received object and returns the spool record for it (the caller writes it). */
export async function admit(deps: AdmissionDeps, object: unknown, src: string | undefined): Promise<SpoolRecord> {
  const { ctx } = deps;
  const now = ctx.now();
  let layers: RelayLayer[] = [];
  let env: ParsedEnvelope;
  if (isRelayed(object)) ({ layers, envelope: env } = relayLayers(object));
  else env = parseEnvelope(object);
  // We add one more layer: a message that already has MAX_RELAY_HOPS can go no further.
  if (layers.length >= MAX_RELAY_HOPS) throw new ProtocolError('hop_limit_exceeded');
  for (const layer of layers) {
    const claims = await checkCredential(deps, layer.cred, 'relay', now);
    if (claims.cnf.sig_kid !== layer.relay) throw new ProtocolError('credential_invalid', 'the layer names another relay key');
    await verifyLayerSignature(ctx, layer, fromB64uExact(claims.cnf.sig, 32));
  }
  if (env.cred === undefined) throw new ProtocolError('credential_invalid', 'a relay needs the credential attached to the envelope (cred)');
  const claims = await checkCredential(deps, env.cred, 'agent', now);
  if (claims.cnf.sig_kid !== env.header.snd) throw new ProtocolError('credential_invalid', 'the credential names another sender key');
  await verifyEnvelopeSignature(ctx, env, fromB64uExact(claims.cnf.sig, 32));
  const f = DEFAULT_FRESHNESS;
  if (env.header.iat > now + f.maxFutureMs || env.header.iat < now - f.maxAgeMs) throw new ProtocolError('stale_message');
  const record: SpoolRecord = {
    v: 1,
    rat: now,
    snd: env.header.snd,
    mid: env.header.mid,
    env: envelopeBinding(env),
    iat: env.header.iat,
    object,
  };
  if (src) record.src = src;
  return record;
}

async function checkCredential(deps: AdmissionDeps, jwt: string, role: 'agent' | 'relay', now: number): Promise<CredentialClaims> {
  const issuer = await deps.keys.resolve(credentialKid(jwt));
  if (!issuer) throw new ProtocolError('credential_invalid', 'the credential names a server key this relay does not trust');
  const claims = await verifiedCredential(deps.credentials, jwt, issuer.signing, issuer.fingerprint, now);
  if (claims.role !== role)
    throw new ProtocolError('credential_invalid', `the credential is not a${role === 'agent' ? 'n agent' : ' relay'}'s`);
  const held = deps.revocations();
  if (held.subjects.agent.has(claims.sub)) throw new ProtocolError('agent_revoked');
  if (held.subjects.key.has(claims.cnf.sig_kid)) throw new ProtocolError('key_revoked');
  return claims;
}
