// Keyset pagination for admin listings: a stable order (created_at, id), at most `limit` rows per
// page, and an opaque cursor naming the last row returned. No listing ever puts a list of ids into
// a statement's parameters (PostgreSQL's wire protocol allows 65,535) or a log line: related rows
// (keys, token uses) are fetched with the page's own condition as a subquery.
import { and, asc, gt, or, sql, eq, type AnyColumn, type SQL } from 'drizzle-orm';
import { b64u, fromB64u, fromUtf8, utf8 } from '../../protocol/bytes.js';
import { ApiError } from '../errors.js';

export const DEFAULT_PAGE_SIZE = 100;
export const MAX_PAGE_SIZE = 1000;

export interface PageRequest {
  limit: number;
  cursor?: string | undefined;
}

interface Position {
  /** created_at exactly as PostgreSQL prints it (microseconds kept; a JS Date would drop them). */
  at: string;
  id: string;
}

const AT = /^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}(\.\d{1,6})?[+-]\d{2}(:\d{2})?$/;
const ID = /^[A-Za-z0-9_-]{1,64}$/;

export function encodeCursor(p: Position): string {
  return b64u(utf8(JSON.stringify([p.at, p.id])));
}

function decodeCursor(cursor: string): Position {
  try {
    const v = JSON.parse(fromUtf8(fromB64u(cursor))) as unknown;
    if (Array.isArray(v) && v.length === 2 && typeof v[0] === 'string' && AT.test(v[0]) && typeof v[1] === 'string' && ID.test(v[1]))
      return { at: v[0], id: v[1] };
  } catch {
    // fall through
  }
  throw new ApiError('request_invalid', 'cursor is not one this server issued');
}

/** `created_at::text`, to build the next cursor from. */
export const positionOf = (createdAt: AnyColumn) => sql<string>`${createdAt}::text`;

/**
 * The page's WHERE (rows after the cursor) and ORDER BY, over a table's created_at and id columns.
 */
export function pageQuery(req: PageRequest, createdAt: AnyColumn, id: AnyColumn): { where: SQL | undefined; orderBy: SQL[] } {
  let where: SQL | undefined;
  if (req.cursor !== undefined) {
    const p = decodeCursor(req.cursor);
    const at = sql`${p.at}::timestamptz`;
    where = or(gt(createdAt, at), and(eq(createdAt, at), gt(id, p.id)));
  }
  return { where, orderBy: [asc(createdAt), asc(id)] };
}

/** Splits the `limit + 1` rows fetched into the page and the cursor of the next one (null at the end). */
export function paginate<R extends { position: string; id: string }>(rows: R[], limit: number): { rows: R[]; nextCursor: string | null } {
  if (rows.length <= limit) return { rows, nextCursor: null };
  const page = rows.slice(0, limit);
  const last = page[page.length - 1]!;
  return { rows: page, nextCursor: encodeCursor({ at: last.position, id: last.id }) };
}
