// The server keys a relay verifies with (spec/PROTOCOL.md §11.1, §14). The relay follows server key
// rotations as an agent does (agent/server-keys.ts: the endorsement chain published in upstream's
// /.well-known/latchkey, walked from its pin), and unlike an agent it also keeps the key sets it
// left behind: agents that have not moved or renewed yet still send credentials those sets issued,
// and get receipts signed by the set they addressed. A set left behind is trusted until upstream's
// discovery document (naming the relay's own pin as current) no longer lists it among `previous`,
// i.e. until the server stops accepting it. The sets left behind are kept in server-keys.json
// (0600, atomic), so a restart with upstream down still verifies what it verified before.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { b64u, fromB64uExact } from '../protocol/bytes.js';
import type { ProtocolContext } from '../protocol/crypto/types.js';
import { keySetOf } from '../protocol/discovery.js';
import type { ServerPublicKeys } from '../protocol/enrollment.js';
import { fingerprintOf, keyIdOf } from '../protocol/keys.js';
import { catchUpFromDocument } from '../agent/server-keys.js';
import { endpoint, getJson } from '../agent/http.js';
import { StateError, type AgentState } from '../agent/state.js';
import { writeSecretFile } from '../node/fs-secure.js';
import type { Logger } from '../server/logger.js';

export const SERVER_KEYS_FILE = 'server-keys.json';
/** An unknown key id makes the relay look for a rotation at most this often. */
const REFRESH_ON_DEMAND_MS = 5000;

type Stored = { sig: string; kx: string };

export class RelayServerKeys {
  private lastRefresh = 0;
  private inFlight: Promise<void> | undefined;

  private constructor(
    private readonly ctx: ProtocolContext,
    private readonly state: () => AgentState,
    private readonly upstream: string,
    private readonly logger: Logger,
    private previous: ServerPublicKeys[],
  ) {}

  static async open(ctx: ProtocolContext, state: () => AgentState, upstream: string, logger: Logger): Promise<RelayServerKeys> {
    const text = await readFile(join(state().dir, SERVER_KEYS_FILE), 'utf8').catch(() => undefined);
    let previous: ServerPublicKeys[] = [];
    if (text !== undefined) {
      try {
        const o = JSON.parse(text) as { previous: Stored[] };
        previous = o.previous.map((p) => keySet(fromB64uExact(p.sig, 32), fromB64uExact(p.kx, 32)));
      } catch {
        throw new StateError('state_invalid', `${state().dir} holds an unreadable ${SERVER_KEYS_FILE}`);
      }
    }
    return new RelayServerKeys(ctx, state, upstream, logger, previous);
  }

  /** The pinned (current) key set. */
  get current(): ServerPublicKeys {
    return this.state().server;
  }

  /** The key sets left behind that the server still accepts, newest first. */
  get left(): readonly ServerPublicKeys[] {
    return this.previous;
  }

  /** The trusted key set whose signing key is `kid`. */
  bySigningKid(kid: string): ServerPublicKeys | undefined {
    return [this.current, ...this.previous].find((k) => k.signing.kid === kid);
  }

  /**
   * The trusted key set whose signing key is `kid`; when there is none, looks upstream for a rotation
   * first (at most every few seconds): an agent or a receipt may have moved before the relay did.
   */
  async resolve(kid: string): Promise<ServerPublicKeys | undefined> {
    const known = this.bySigningKid(kid);
    if (known || this.ctx.now() - this.lastRefresh < REFRESH_ON_DEMAND_MS) return known;
    await this.refresh();
    return this.bySigningKid(kid);
  }

  /** Catches up with rotations and forgets sets the server dropped. Never throws: a failure is logged. */
  refresh(): Promise<void> {
    this.inFlight ??= this.doRefresh().finally(() => (this.inFlight = undefined));
    return this.inFlight;
  }

  private async doRefresh(): Promise<void> {
    this.lastRefresh = this.ctx.now();
    try {
      const doc = await getJson(endpoint(this.upstream, '/.well-known/latchkey'), { timeoutMs: 10_000 });
      const state = this.state();
      const before = state.server;
      // The pin is about to move: keep it among the sets left behind first, so a crash in between
      // never forgets a set agents still use.
      const announced = keySetOf(doc);
      if (announced && announced.fingerprint !== before.fingerprint) await this.save([before, ...this.previous], announced.fingerprint);
      const left = await catchUpFromDocument(this.ctx, state, doc);
      if (left.length > 0)
        this.logger.info({ from: before.fingerprint, to: state.server.fingerprint }, 'relay: server key moved (endorsed)');
      let previous = [...left.reverse(), ...this.previous];
      // What upstream still accepts, when its document names our pin as current (unsigned: it can
      // only make the relay refuse more, never trust a set the relay did not walk to).
      if (keySetOf(doc)?.fingerprint === state.server.fingerprint) {
        const accepted = new Set(previousOf(doc));
        previous = previous.filter((p) => accepted.has(p.fingerprint));
      }
      await this.save(previous, state.server.fingerprint);
    } catch (err) {
      this.logger.warn({ code: (err as { code?: string }).code }, 'relay: server keys not refreshed');
    }
  }

  /** Keeps `sets` (minus the pin and repeats) as the sets left behind, on disk first. */
  private async save(sets: ServerPublicKeys[], pin: string): Promise<void> {
    const next = sets.filter((p, i) => p.fingerprint !== pin && sets.findIndex((q) => q.fingerprint === p.fingerprint) === i);
    if (next.map((p) => p.fingerprint).join() === this.previous.map((p) => p.fingerprint).join()) return;
    const stored = next.map((p) => ({ sig: b64u(p.signing.publicKey), kx: b64u(p.agreement.publicKey), fp: p.fingerprint }));
    await writeSecretFile(join(this.state().dir, SERVER_KEYS_FILE), `${JSON.stringify({ v: 1, previous: stored }, null, 2)}\n`);
    this.previous = next;
  }
}

function keySet(sig: Uint8Array, kx: Uint8Array): ServerPublicKeys {
  return {
    signing: { publicKey: sig, kid: keyIdOf('ed25519', sig) },
    agreement: { publicKey: kx, kid: keyIdOf('x25519', kx) },
    fingerprint: fingerprintOf(sig, kx),
  };
}

function previousOf(doc: unknown): string[] {
  const list = (doc as { previous?: unknown }).previous;
  return Array.isArray(list) ? list.slice(0, 64).flatMap((p) => keySetOf(p)?.fingerprint ?? []) : [];
}
