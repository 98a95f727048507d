// The server's bounded gunzip (services/decompress.ts) on node:zlib, for Node and for Workers with
// nodejs_compat. node:zlib is ~10× faster here than DecompressionStream for the small bodies agents
// send, and stops at maxOutputLength without buffering the rest.
import { gunzipSync, inflateSync } from 'node:zlib';
import { ProtocolError } from '../protocol/errors.js';
import type { Gunzip } from '../server/services/decompress.js';

export const gunzipBounded: Gunzip = (input, maxBytes) => {
  try {
    const out = gunzipSync(input, { maxOutputLength: maxBytes });
    return new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
  } catch (err) {
    if ((err as { code?: string }).code === 'ERR_BUFFER_TOO_LARGE' || err instanceof RangeError) {
      throw new ProtocolError('payload_too_large', 'decompressed content exceeds the limit');
    }
    throw new ProtocolError('payload_invalid', 'content is not valid gzip');
  }
};

/** Bounded zlib (RFC 1950) inflate, the same bound and codes as gunzipBounded: legacy agents' bodies. */
export const inflateBounded: Gunzip = (input, maxBytes) => {
  try {
    const out = inflateSync(input, { maxOutputLength: maxBytes });
    return new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
  } catch (err) {
    if ((err as { code?: string }).code === 'ERR_BUFFER_TOO_LARGE' || err instanceof RangeError) {
      throw new ProtocolError('payload_too_large', 'decompressed content exceeds the limit');
    }
    throw new ProtocolError('payload_invalid', 'content is not valid zlib');
  }
};
