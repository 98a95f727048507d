// The server's bounded decompression (services/decompress.ts) on node:zlib, for Node and for Workers
// with nodejs_compat. node:zlib is ~10× faster here than DecompressionStream for the small bodies
// agents send, and stops at maxOutputLength without buffering the rest.
import { gunzipSync, inflateSync, type ZlibOptions } from 'node:zlib';
import { ProtocolError } from '../protocol/errors.js';
import type { Gunzip } from '../server/services/decompress.js';

/** One bounded decompressor: over the bound is `payload_too_large`, anything else unreadable `payload_invalid`. */
function bounded(decompress: (input: Uint8Array, opts: ZlibOptions) => Buffer, format: string): Gunzip {
  return (input, maxBytes) => {
    try {
      const out = decompress(input, { maxOutputLength: maxBytes });
      return new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
    } catch (err) {
      if ((err as { code?: string }).code === 'ERR_BUFFER_TOO_LARGE' || err instanceof RangeError) {
        throw new ProtocolError('payload_too_large', 'decompressed content exceeds the limit');
      }
      throw new ProtocolError('payload_invalid', `content is not valid ${format}`);
    }
  };
}

export const gunzipBounded: Gunzip = bounded(gunzipSync, 'gzip');

/** Bounded zlib (RFC 1950) inflate, the same bound and codes as gunzipBounded: legacy agents' bodies. */
export const inflateBounded: Gunzip = bounded(inflateSync, 'zlib');
