// The logger interface the app uses (pino's shape). Secrets never go in: callers log ids and codes,
// never tokens, keys, request bodies or Authorization headers.
export interface Logger {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

export const silentLogger: Logger = { debug() {}, info() {}, warn() {}, error() {} };
