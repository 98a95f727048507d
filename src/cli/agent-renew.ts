// `latchkey agent renew`: replace the agent's keys and credential now (spec §12). Crash-safe and
// retry-safe (see agent/renew.ts); only a server-signed refusal is reported as one.
import { randomBytes } from 'node:crypto';
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { HttpError } from '../agent/http.js';
import { renewAgent } from '../agent/renew.js';
import { StateError } from '../agent/state.js';
import { selectCrypto } from '../runtime/crypto.js';
import { CliError } from './run.js';

export function registerAgentRenew(agent: Command): void {
  agent
    .command('renew')
    .description("Renew the agent's keys and credential now (the old key stays valid for a short overlap).")
    .requiredOption('--state-dir <dir>', 'the enrolled agent state dir')
    .option('--via <url>', 'renew through this relay or proxy instead of the server')
    .option('--json', 'machine-readable output')
    .action(async (o: { stateDir: string; via?: string; json?: boolean }) => {
      const ctx = { crypto: await selectCrypto(), random: (n: number) => new Uint8Array(randomBytes(n)), now: () => Date.now() };
      try {
        const r = await renewAgent(ctx, resolve(o.stateDir), { via: o.via });
        const view = {
          agentId: r.agent.agentId,
          previousKeyId: r.previousSigKid,
          keyId: r.sigKid,
          expiresAt: new Date(r.agent.expiresAt).toISOString(),
          previousKeyAcceptedUntil: new Date(r.supersededUntil).toISOString(),
        };
        if (o.json) console.log(JSON.stringify(view, null, 2));
        else console.log(`renewed: key ${view.keyId} (was ${view.previousKeyId}), expires ${view.expiresAt}`);
      } catch (err) {
        if (err instanceof StateError || err instanceof HttpError) throw new CliError(err.code, err.message);
        throw err;
      }
    });
}
