import { Lru } from '../../protocol/lru.js';
import type { Cidr } from './cidr.js';

// What never changes about a registered sender key, kept in memory so that a known key costs no
// database round trip before its message is stored (spec/PROTOCOL.md §8.1, §Revocation).
//
// Only immutable facts live here: the agent a key belongs to, its public keys and its validity
// period. Whether the key and its agent are still active, the highest counter and whether a
// message id was seen are mutable and shared by every instance, so they are checked inside the one
// statement that stores the message (services/ingest.ts): a revocation committed before that
// statement runs is always seen, on every instance, and nothing about it is ever cached here.

export interface SenderKeyFacts {
  agentId: string;
  /** The identity's role (immutable): only a relay may send legacy-origin inventories (§11.2). */
  role: 'agent' | 'relay';
  sigPub: Uint8Array;
  kxPub: Uint8Array;
  createdAt: number;
  expiresAt: number;
  /**
   * A lower bound of the key's highest accepted counter (it only grows): lets a message far below
   * the window be refused before it is opened. The store statement checks the exact value.
   */
  counterFloor: number;
  /** The agent's network (§20, externally provisioned agents): messages from elsewhere are refused; null: unparseable, refuse all. */
  cidr?: Cidr | null | undefined;
  /** The last credential (§7) verified for this key, and when it expires (ms): not verified again. */
  credential?: { jwt: string; expiresAt: number };
}

/** Per instance, keyed by signing kid. A refusal for status deletes the entry (see ingest.ts). */
export class SenderKeyCache extends Lru<string, SenderKeyFacts> {
  constructor(capacity = 65_536) {
    super(capacity);
  }
}
