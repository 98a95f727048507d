// What a PostgreSQL error means, across postgres.js and PGlite (drizzle may wrap the driver error).

/** The violated unique constraint's name (or "unique"), when `err` is a unique violation. */
export function uniqueViolation(err: unknown): string | undefined {
  for (
    let e = err as { code?: string; constraint_name?: string; constraint?: string; cause?: unknown } | undefined;
    e;
    e = e.cause as typeof e
  ) {
    if (e.code === '23505') return e.constraint_name ?? e.constraint ?? 'unique';
  }
  return undefined;
}
