// PostgreSQL cannot store U+0000: not in text, and not as the escape \u0000 inside jsonb (22P05).
// Input that carries one is refused at the boundary with a 4xx, rather than failing in the
// database as a 500.

/** A plain string with no NUL character. */
export const isStorableText = (s: string): boolean => !s.includes('\0');

/**
 * JSON text whose strings and keys hold no NUL. Valid JSON can only spell NUL as the escape
 * \u0000 (raw control characters are not allowed in JSON strings), so this looks for that escape
 * not itself escaped: preceded by an even number of backslashes.
 */
export function isStorableJsonText(text: string): boolean {
  if (!text.includes('\\u0000')) return true;
  return !/(?<!\\)(?:\\\\)*\\u0000/.test(text);
}
