// `latchkey agent enroll`.
import { randomBytes } from 'node:crypto';
import { resolve } from 'node:path';
import { Option, type Command } from 'commander';
import { enrollAgent, hostAgentName } from '../agent/enroll.js';
import { HttpError } from '../agent/http.js';
import { StateError } from '../agent/state.js';
import { selectCrypto } from '../runtime/crypto.js';
import { parseServerUrl } from './inputs.js';
import { CliError } from './run.js';

export function registerAgentEnroll(agent: Command): void {
  agent
    .command('enroll')
    .description('Enroll this machine with a one-time token: keys are generated here and never leave.')
    .addOption(
      new Option('--server <url>', 'Latchkey server URL (http:// or https://)')
        .env('LATCHKEY_SERVER')
        .makeOptionMandatory()
        .argParser(parseServerUrl('--server')),
    )
    .addOption(new Option('--token <token>', 'enrollment token (lk1_…)').env('LATCHKEY_TOKEN').makeOptionMandatory())
    .requiredOption('--state-dir <dir>', 'where keys, credential and server keys are kept (0700/0600)')
    .option('--name <name>', "agent name (letters, digits, - _ .; default: this machine's host name, other characters as -)")
    .option('--force', 'replace an agent already enrolled in this state dir')
    .option('--json', 'machine-readable output')
    .action(async (o: { server: string; token: string; stateDir: string; name?: string; force?: boolean; json?: boolean }) => {
      const crypto = await selectCrypto();
      try {
        const record = await enrollAgent(
          { crypto, random: (n) => new Uint8Array(randomBytes(n)), now: () => Date.now() },
          { serverUrl: o.server, token: o.token, stateDir: resolve(o.stateDir), name: o.name ?? hostAgentName(), force: o.force ?? false },
        );
        if (o.json) {
          console.log(
            JSON.stringify(
              {
                agentId: record.agentId,
                name: record.name,
                role: record.role,
                labels: record.labels,
                expiresAt: new Date(record.expiresAt).toISOString(),
                serverFingerprint: record.server.fp,
              },
              null,
              2,
            ),
          );
        } else {
          console.log(record.agentId);
        }
      } catch (err) {
        if (err instanceof StateError || err instanceof HttpError) throw new CliError(err.code, err.message);
        throw err;
      }
    });
}
