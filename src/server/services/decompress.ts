// Bounded gzip decompression (Web DecompressionStream: Node 20 and Workers). Output beyond
// `maxBytes` aborts at once with payload_too_large: a gzip bomb costs at most maxBytes of memory.
import { ProtocolError } from '../../protocol/errors.js';

export async function gunzipBounded(input: Uint8Array, maxBytes: number): Promise<Uint8Array> {
  const stream = new Blob([input as Uint8Array<ArrayBuffer>]).stream().pipeThrough(new DecompressionStream('gzip'));
  const reader = stream.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      total += value.length;
      if (total > maxBytes) {
        await reader.cancel().catch(() => {});
        throw new ProtocolError('payload_too_large', 'decompressed content exceeds the limit');
      }
      chunks.push(value);
    }
  } catch (err) {
    if (err instanceof ProtocolError) throw err;
    throw new ProtocolError('payload_invalid', 'content is not valid gzip');
  }
  const out = new Uint8Array(total);
  let o = 0;
  for (const c of chunks) {
    out.set(c, o);
    o += c.length;
  }
  return out;
}
