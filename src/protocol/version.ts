// The one protocol version constant. It is bound into every signature label, HPKE info string and
// envelope header (spec/PROTOCOL.md §Versioning); a peer MUST reject any other value.
export const PROTOCOL_VERSION = 1;
export const SUPPORTED_VERSIONS: readonly number[] = [PROTOCOL_VERSION];
