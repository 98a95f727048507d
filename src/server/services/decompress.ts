// Bounded gzip decompression, as the runtime provides it (src/runtime/zlib.ts: node:zlib, on Node and
// on Workers with nodejs_compat). Output beyond `maxBytes` must abort at once with payload_too_large,
// so a gzip bomb costs at most maxBytes of memory; input that is not gzip is payload_invalid.
export type Gunzip = (input: Uint8Array, maxBytes: number) => Uint8Array;
