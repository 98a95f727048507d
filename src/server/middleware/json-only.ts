// Agent routes take JSON only. Without this a browser could deliver a cross-origin `text/plain`
// POST (a "simple" request: no CORS preflight) to a server on an internal network, and the route
// would parse it. `application/json` (with parameters such as charset) or 415.
import type { MiddlewareHandler } from 'hono';
import { LatchkeyError } from '../errors.js';

export const requireJson: MiddlewareHandler = async (c, next) => {
  const mediaType = c.req.header('content-type')?.split(';', 1)[0]?.trim().toLowerCase();
  if (mediaType !== 'application/json') {
    throw new LatchkeyError('unsupported_media_type', 'Content-Type must be application/json');
  }
  await next();
};
