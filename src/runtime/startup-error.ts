/** A startup failure with one clear line for stderr (no stack, no secrets). */
export class StartupError extends Error {}
