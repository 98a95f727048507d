// Limits of an enrollment token, in one place: the admin route validates with them, the CLI's
// --help and its usage errors name them.
export const MIN_TOKEN_TTL_SECONDS = 60;
export const MAX_TOKEN_TTL_SECONDS = 30 * 24 * 3600;
export const DEFAULT_TOKEN_TTL_SECONDS = 3600;
export const MAX_TOKEN_USES = 10_000;
