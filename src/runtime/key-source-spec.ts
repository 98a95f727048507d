// `--key-request exec:PATH|socket:PATH` as the flag takes it; in a module of its own so that the CLI
// parses it without loading the server (src/runtime/key-source.ts is the transport).

/** `exec:/PATH` or `socket:/PATH` (absolute paths only: a server's working directory is no place to look). */
export function parseKeySourceSpec(value: string): { kind: 'exec' | 'socket'; path: string } | undefined {
  const m = /^(exec|socket):(\/.*)$/.exec(value);
  if (!m) return undefined;
  return { kind: m[1] as 'exec' | 'socket', path: m[2]! };
}
