// `latchkey agent revocations`: fetch the server's signed revocation list (spec §13) since the version
// held, verify it with the pinned key, refuse a rollback or a gap, and keep it in the state dir.
import { randomBytes } from 'node:crypto';
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { HttpError } from '../agent/http.js';
import { refreshRevocations } from '../agent/revocations.js';
import { loadState, StateError } from '../agent/state.js';
import { selectCrypto } from '../runtime/crypto.js';
import { CliError } from './run.js';

export function registerAgentRevocations(agent: Command): void {
  agent
    .command('revocations')
    .description("Fetch and verify the server's revocation list (ids of revoked tokens, keys and agents) and keep it in the state dir.")
    .requiredOption('--state-dir <dir>', 'the enrolled agent state dir')
    .option('--via <url>', 'fetch through this relay or proxy instead of the server')
    .option('--json', 'machine-readable output')
    .action(async (o: { stateDir: string; via?: string; json?: boolean }) => {
      const ctx = { crypto: await selectCrypto(), random: (n: number) => new Uint8Array(randomBytes(n)), now: () => Date.now() };
      const dir = resolve(o.stateDir);
      try {
        const { held, previousVersion, added } = await refreshRevocations(ctx, dir, { via: o.via });
        const { agent, keys } = await loadState(ctx.crypto, dir);
        const view = {
          version: held.version,
          previousVersion,
          issuedAt: held.issuedAt ? new Date(held.issuedAt).toISOString() : null,
          added: added.map((e) => ({ seq: e.seq, kind: e.kind, subject: e.subject, at: new Date(e.at).toISOString() })),
          revoked: { tokens: held.subjects.token.size, keys: held.subjects.key.size, agents: held.subjects.agent.size },
          /** This agent, or its current key, is on the list. */
          self: held.subjects.agent.has(agent.agentId) || held.subjects.key.has(keys.signing.kid),
        };
        if (o.json) console.log(JSON.stringify(view, null, 2));
        else
          console.log(
            `revocation list version ${view.version} (${added.length} new): ${view.revoked.tokens} tokens, ${view.revoked.keys} keys, ${view.revoked.agents} agents revoked${view.self ? '; THIS AGENT IS REVOKED' : ''}`,
          );
      } catch (err) {
        if (err instanceof StateError || err instanceof HttpError) throw new CliError(err.code, err.message);
        throw err;
      }
    });
}
