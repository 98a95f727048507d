// `latchkey agent send | seal | run`.
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { runDaemon } from '../agent/daemon.js';
import { HttpError } from '../agent/http.js';
import { QueuedAtRelay, readInventory, sealInventory, sendInventory, submitEnvelope } from '../agent/send.js';
import { loadState, StateError } from '../agent/state.js';
import type { ProtocolContext } from '../protocol/crypto/types.js';
import { parseEnvelope } from '../protocol/envelope.js';
import { selectCrypto } from '../runtime/crypto.js';
import { writeSecretFile } from '../node/fs-secure.js';
import { parseDuration } from './admin-options.js';
import { parseServerUrl, requireReadable } from './inputs.js';
import { CliError, usage } from './run.js';

async function context(): Promise<ProtocolContext> {
  return { crypto: await selectCrypto(), random: (n) => new Uint8Array(randomBytes(n)), now: () => Date.now() };
}

/** Agent-side failures surface as their code (state_missing, unreachable, replay_detected…). */
async function asCli<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof StateError || err instanceof HttpError) throw new CliError(err.code, err.message);
    throw err;
  }
}

export function registerAgentMessaging(agent: Command): void {
  agent
    .command('send')
    .description('Seal an inventory and send it (or submit a sealed envelope); verifies the signed receipt.')
    .requiredOption('--state-dir <dir>', 'the enrolled agent state dir')
    .option('--file <inventory.json>', 'GLPI native inventory to seal and send')
    .option('--envelope <file>', 'an envelope sealed earlier with `agent seal`')
    .option('--via <url>', 'send through this relay or proxy instead of the server', parseServerUrl('--via'))
    .option('--json', 'machine-readable output')
    .action(async (o: { stateDir: string; file?: string; envelope?: string; via?: string; json?: boolean }) => {
      if (!o.file === !o.envelope) throw usage('give exactly one of --file or --envelope');
      if (o.file) await requireReadable('--file', o.file);
      if (o.envelope) await requireReadable('--envelope', o.envelope);
      const ctx = await context();
      await asCli(async () => {
        let outcome;
        try {
          outcome = o.envelope
            ? await submitEnvelope(
                ctx,
                await loadState(ctx.crypto, resolve(o.stateDir)),
                parseEnvelope(await readFile(o.envelope)).wire,
                o.via,
              )
            : await sendInventory(ctx, resolve(o.stateDir), await readInventory(o.file!), o.via);
        } catch (err) {
          if (!(err instanceof QueuedAtRelay)) throw err;
          // The relay wrote it durably (its signed acceptance verified); `agent run` collects the receipt.
          const a = err.accept;
          if (o.json)
            console.log(
              JSON.stringify({ status: 'queued', messageId: a.mid, relay: a.relay, queuedAt: new Date(a.rat).toISOString() }, null, 2),
            );
          else console.log(`queued ${a.mid} at relay ${a.relay} (${new Date(a.rat).toISOString()})`);
          return;
        }
        const { receipt } = outcome;
        if (o.json)
          console.log(
            JSON.stringify(
              {
                status: receipt.status,
                messageId: receipt.mid,
                receivedAt: new Date(receipt.rat).toISOString(),
                directives: receipt.directives ?? null,
              },
              null,
              2,
            ),
          );
        else console.log(`accepted ${receipt.mid} at ${new Date(receipt.rat).toISOString()}`);
      });
    });

  agent
    .command('seal')
    .description('Seal an inventory into an envelope file for offline transfer (air-gapped sites).')
    .requiredOption('--state-dir <dir>', 'the enrolled agent state dir')
    .requiredOption('--file <inventory.json>', 'GLPI native inventory')
    .requiredOption('--out <envelope>', 'where to write the envelope')
    .action(async (o: { stateDir: string; file: string; out: string }) => {
      await requireReadable('--file', o.file);
      const ctx = await context();
      await asCli(async () => {
        const state = await loadState(ctx.crypto, resolve(o.stateDir));
        const envelope = await sealInventory(ctx, state, await readInventory(o.file));
        await writeSecretFile(resolve(o.out), JSON.stringify(envelope));
        console.log(`sealed ${parseEnvelope(envelope).header.mid} to ${o.out}`);
      });
    });

  agent
    .command('run')
    .description('Send inventories on an interval, retrying with backoff while the server is away.')
    .requiredOption('--state-dir <dir>', 'the enrolled agent state dir')
    .option('--file <inventory.json>', 'send this file each time')
    .option('--command <cmd>', 'run this command each time; its stdout is the inventory')
    .option('--interval <duration>', 'time between sends (30s, 5m, 1h)', '1h')
    .option(
      '--splay <duration>',
      'add a random 0..this to each interval, so a fleet started together spreads out (default: a tenth of the interval; 0 turns it off)',
    )
    .option('--start-splay <duration>', 'wait a random 0..this before the first send (0: at once)', '0')
    .option('--via <url>', 'send through this relay or proxy', parseServerUrl('--via'))
    .action(
      async (o: {
        stateDir: string;
        file?: string;
        command?: string;
        interval: string;
        splay?: string;
        startSplay: string;
        via?: string;
      }) => {
        if (!o.file === !o.command) throw usage('give exactly one of --file or --command');
        if (o.file) await requireReadable('--file', o.file);
        const intervalSeconds = parseDuration(o.interval);
        if (intervalSeconds < 1) throw usage('--interval must be at least 1s');
        const splaySeconds = o.splay === undefined ? undefined : parseDuration(o.splay);
        const startSplaySeconds = parseDuration(o.startSplay);
        const ctx = await context();
        const stop = new AbortController();
        process.once('SIGTERM', () => stop.abort());
        process.once('SIGINT', () => stop.abort());
        await asCli(() =>
          runDaemon(ctx, {
            stateDir: resolve(o.stateDir),
            file: o.file,
            command: o.command,
            intervalSeconds,
            splaySeconds,
            splayFraction: 0.1,
            startSplaySeconds,
            via: o.via,
            signal: stop.signal,
            log: (event) => console.log(JSON.stringify({ time: new Date().toISOString(), ...event })),
          }),
        );
      },
    );
}
