// The agent's side of server key rotation (spec/PROTOCOL.md §14). The pinned server key set moves
// only along a chain of endorsements that starts at the key set already pinned, each link verified
// with the key trusted so far (walkEndorsements); anything else is `server_key_mismatch` and the pin
// is left as it was. Two ways in:
//   - a verified receipt's `serverKey` directive (the agent addressed a previous key set): its
//     endorsements lead from our pin to the announced keys;
//   - catching up after being offline across rotations (our key set is no longer accepted): the
//     chain published in /.well-known/latchkey, walked from our pin. The document itself proves
//     nothing; only the chain from our pin does.
import { b64u } from '../protocol/bytes.js';
import type { ProtocolContext } from '../protocol/crypto/types.js';
import { keySetOf } from '../protocol/discovery.js';
import type { ServerPublicKeys } from '../protocol/enrollment.js';
import { ProtocolError } from '../protocol/errors.js';
import type { Directives } from '../protocol/receipt.js';
import { walkEndorsementPath, walkEndorsements } from '../protocol/server-key-endorsement.js';
import { endpoint, getJson } from './http.js';
import { saveAgentRecord, type AgentState } from './state.js';

/** Follows a verified `serverKey` directive; returns whether the pin moved. */
export async function followServerKeyDirective(
  ctx: ProtocolContext,
  state: AgentState,
  directive: NonNullable<Directives['serverKey']>,
): Promise<boolean> {
  const reached = await walkEndorsements(ctx.crypto, state.server, directive.endorsements);
  if (
    reached.fingerprint !== directive.fp ||
    b64u(reached.signing.publicKey) !== directive.sig ||
    b64u(reached.agreement.publicKey) !== directive.kx
  ) {
    throw new ProtocolError('server_key_mismatch', 'the endorsements do not lead to the announced server keys');
  }
  return pinServerKeys(state, reached);
}

/**
 * Catches up with rotations made while this agent was away: fetches the discovery document and
 * walks its endorsement chain from our pin to its current keys (from the relay `via` when given: it
 * serves upstream's document). Returns whether the pin moved.
 */
export async function catchUpServerKeys(ctx: ProtocolContext, state: AgentState, via?: string): Promise<boolean> {
  const doc = await getJson(endpoint(via ?? state.agent.serverUrl, '/.well-known/latchkey'));
  return (await catchUpFromDocument(ctx, state, doc)).length > 0;
}

/**
 * The walk of catchUpServerKeys on a discovery document already fetched (a relay fetches it from
 * its upstream). Returns the key sets left behind, oldest first: the pin and every intermediate set
 * (empty when the pin did not move).
 */
export async function catchUpFromDocument(ctx: ProtocolContext, state: AgentState, doc: unknown): Promise<ServerPublicKeys[]> {
  const announced = keySetOf(doc);
  if (!announced) throw new ProtocolError('server_key_mismatch', 'the discovery document holds no valid keys');
  if (announced.fingerprint === state.server.fingerprint) return [];
  const endorsements = (doc as { endorsements?: unknown }).endorsements;
  const path = await walkEndorsementPath(ctx.crypto, state.server, Array.isArray(endorsements) ? endorsements : []);
  const reached = path.at(-1);
  if (reached?.fingerprint !== announced.fingerprint)
    throw new ProtocolError('server_key_mismatch', 'the endorsement chain does not lead from the pinned key to the announced one');
  const left = [state.server, ...path.slice(0, -1)];
  await pinServerKeys(state, reached);
  return left;
}

/** Re-pins (agent.json, written atomically) and updates `state` in place. */
async function pinServerKeys(state: AgentState, keys: ServerPublicKeys): Promise<boolean> {
  if (keys.fingerprint === state.server.fingerprint) return false;
  const server = {
    sig: b64u(keys.signing.publicKey),
    sigKid: keys.signing.kid,
    kx: b64u(keys.agreement.publicKey),
    kxKid: keys.agreement.kid,
    fp: keys.fingerprint,
  };
  const agent = { ...state.agent, server };
  await saveAgentRecord(state.dir, agent);
  state.agent = agent;
  state.server = keys;
  return true;
}
