// One relay for bench/relay.ts, in a process of its own, composed exactly as `latchkey relay serve`
// composes it (src/relay/node.ts startRelay: enrolls on first start with the token, pino at info to
// stdout, which the bench discards, prom-client metrics, spool with fsync on accept).
//   node [--cpu-prof --cpu-prof-dir DIR] --import tsx --import ./bench/count-crypto.ts bench/relay-process.ts \
//        UPSTREAM STATE_DIR TOKEN RECEIPT_WAIT_MS                               (spawned with an IPC channel)
// Sends {url} over IPC once it listens; answers {counts} with the Ed25519 operations of this process
// so far (bench/count-crypto.ts); on SIGTERM closes and exits (which writes the profile). The bench
// reads the spool's depth from the directory itself, so watching it costs the relay nothing.
import { startRelay } from '../src/relay/node.js';
import type { CryptoCounts } from './count-crypto.js';

export interface RelayReady {
  url: string;
}

const [upstream, stateDir, token, receiptWaitMs] = process.argv.slice(2) as [string, string, string, string];
const relay = await startRelay({
  host: '127.0.0.1',
  port: 0,
  upstream,
  stateDir,
  token,
  spoolMaxBytes: 1 << 30,
  receiptWaitMs: Number(receiptWaitMs),
  revocationIntervalMs: 60_000,
  logLevel: 'info',
});
const counts = () => ({ ...(globalThis as { __latchkeyBenchCrypto?: CryptoCounts }).__latchkeyBenchCrypto! });
process.on('message', (m: { counts?: true }) => {
  if (m.counts) process.send!(counts());
});
process.send!({ url: relay.url } satisfies RelayReady);
process.once('SIGTERM', () => {
  void relay.close().finally(() => process.exit(0));
});
