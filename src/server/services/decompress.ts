// Bounded gzip decompression. Output beyond `maxBytes` aborts at once with payload_too_large: a gzip
// bomb costs at most maxBytes of memory. node:zlib (Node, and Workers with nodejs_compat) is ~10×
// faster here than DecompressionStream for the small bodies agents send.
import { gunzipSync } from 'node:zlib';
import { ProtocolError } from '../../protocol/errors.js';

export function gunzipBounded(input: Uint8Array, maxBytes: number): Uint8Array {
  try {
    const out = gunzipSync(input, { maxOutputLength: maxBytes });
    return new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
  } catch (err) {
    if ((err as { code?: string }).code === 'ERR_BUFFER_TOO_LARGE' || err instanceof RangeError) {
      throw new ProtocolError('payload_too_large', 'decompressed content exceeds the limit');
    }
    throw new ProtocolError('payload_invalid', 'content is not valid gzip');
  }
}
