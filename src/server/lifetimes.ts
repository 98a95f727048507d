// Credential lifetime bounds, in a module of their own: the CLI parses flags against them without
// loading the server (a `latchkey agent ...` start must not pay for drizzle, hono and PGlite).

/** Keys and credentials issued at enrollment live this long unless renewed. */
export const DEFAULT_CREDENTIAL_TTL_SECONDS = 30 * 24 * 3600;
/** Bounds of a credential lifetime (server default or per token): one hour to ten years. */
export const MIN_CREDENTIAL_TTL_SECONDS = 3600;
export const MAX_CREDENTIAL_TTL_SECONDS = 10 * 366 * 24 * 3600;
/** Longest overlap a server accepts as configuration (`--renew-overlap`): a week. */
export const MAX_RENEW_OVERLAP_SECONDS = 7 * 24 * 3600;
