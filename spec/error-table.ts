// spec/PROTOCOL.md §15's error table, rendered from the one list of codes (src/protocol/errors.ts).
// `npm run errors` writes it between the markers; test/server/error-table.test.ts checks it is current.
import { ERRORS, ERROR_CODES, HTTP_ERROR_CODES } from '../src/protocol/errors.js';

export const BEGIN = '<!-- errors:begin (generated from src/protocol/errors.ts by `npm run errors`; do not edit by hand) -->';
export const END = '<!-- errors:end -->';

export function renderErrorTable(): string {
  const http = new Set<string>(HTTP_ERROR_CODES);
  const rows = ERROR_CODES.map(
    (code) => `| ${code} | ${ERRORS[code].status} | ${http.has(code) ? '(HTTP layer) ' : ''}${ERRORS[code].meaning} |`,
  );
  return [BEGIN, '| code | HTTP | meaning |', '| --- | --- | --- |', ...rows, END].join('\n');
}

/** The document with its table replaced by a fresh one; throws when the markers are missing. */
export function withErrorTable(markdown: string): string {
  const begin = markdown.indexOf('<!-- errors:begin');
  const end = markdown.indexOf(END);
  if (begin < 0 || end < begin) throw new Error('spec/PROTOCOL.md has no <!-- errors:begin --> … <!-- errors:end --> markers');
  return markdown.slice(0, begin) + renderErrorTable() + markdown.slice(end + END.length);
}

/** The codes and statuses the document's table lists, parsed back from its rows. */
export function parseErrorTable(markdown: string): Map<string, number> {
  const begin = markdown.indexOf('<!-- errors:begin');
  const end = markdown.indexOf(END);
  const rows = new Map<string, number>();
  for (const line of markdown.slice(begin, end).split('\n')) {
    const m = /^\| ([a-z_]+) \| (\d{3}) \|/.exec(line);
    if (m) rows.set(m[1]!, Number(m[2]));
  }
  return rows;
}
