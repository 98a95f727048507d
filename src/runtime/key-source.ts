// The Node transport of the key request (spec/PROTOCOL.md §20.2; the policy is in
// src/server/services/key-request.ts): `--key-request exec:PATH` and/or `--key-request socket:PATH`.
//   exec:   PATH is run with argv [kid, KID] or [ip, ADDRESS], never through a shell, with stdin
//           closed, a clean environment (a fixed PATH and LANG=C only), a deadline after which its
//           whole process group is killed, and at most MAX_ANSWER_BYTES of stdout; a non-zero exit
//           is a failure.
//   socket: one connection per question to the Unix socket PATH, one line `kid:KID` or `ip:ADDRESS`,
//           the answer read until the peer closes (or a newline), with the same deadline and bound.
// With both, the socket is asked first and the program when the socket is down (cannot connect).
import { spawn } from 'node:child_process';
import { createConnection } from 'node:net';
import type { Logger } from '../server/logger.js';
import { KeySourceFailure, type KeyQuestion, type KeySourceTransport } from '../server/services/key-request.js';

/** Longest answer read from a key source (an answer is a few hundred bytes). */
export const MAX_ANSWER_BYTES = 64 * 1024;
/** `--key-request-timeout` default. */
export const DEFAULT_KEY_REQUEST_TIMEOUT_MS = 2000;
const CLEAN_ENV = { PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', LANG: 'C' };

export interface KeySourceOptions {
  exec?: string | undefined;
  socket?: string | undefined;
  timeoutMs: number;
}

export function runProgram(path: string, args: readonly string[], timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    let child;
    try {
      child = spawn(path, args, { env: CLEAN_ENV, stdio: ['ignore', 'pipe', 'ignore'], detached: true, shell: false });
    } catch {
      reject(new KeySourceFailure('program could not be started'));
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    let failure: KeySourceFailure | undefined;
    const kill = (reason: string) => {
      failure ??= new KeySourceFailure(reason);
      try {
        if (child.pid !== undefined) process.kill(-child.pid, 'SIGKILL');
      } catch {
        child.kill('SIGKILL');
      }
    };
    const timer = setTimeout(() => kill('program timed out'), timeoutMs);
    child.stdout.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_ANSWER_BYTES) return kill('program output too large');
      chunks.push(chunk);
    });
    child.on('error', () => {
      failure ??= new KeySourceFailure('program could not be started');
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (failure) return reject(failure);
      if (code !== 0) return reject(new KeySourceFailure(signal ? 'program killed by a signal' : 'program exited with an error'));
      resolve(Buffer.concat(chunks).toString('utf8'));
    });
  });
}

/** The socket could not be reached at all (as opposed to a bad or late answer). */
class SocketDown extends KeySourceFailure {}

export function askSocket(path: string, line: string, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let connected = false;
    let done = false;
    const conn = createConnection({ path });
    const finish = (err?: KeySourceFailure) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      conn.destroy();
      if (err) reject(err);
      else resolve(Buffer.concat(chunks).toString('utf8'));
    };
    const timer = setTimeout(() => finish(new KeySourceFailure('socket timed out')), timeoutMs);
    conn.on('connect', () => {
      connected = true;
      // Not end(): a peer that does not allow half-open connections (Node's default) would close
      // on our FIN before it could answer. The question is the line; the answer ends the exchange.
      conn.write(`${line}\n`);
    });
    conn.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_ANSWER_BYTES) return finish(new KeySourceFailure('socket answer too large'));
      chunks.push(chunk);
      if (chunk.includes(0x0a)) finish();
    });
    conn.on('end', () => finish());
    conn.on('error', () => finish(connected ? new KeySourceFailure('socket connection failed') : new SocketDown('socket is down')));
  });
}

/** The transport for the given options; with neither, undefined (no key request). */
export function createKeySource(options: KeySourceOptions, logger: Logger): KeySourceTransport | undefined {
  const { exec, socket, timeoutMs } = options;
  if (!exec && !socket) return undefined;
  return {
    async ask(question: KeyQuestion, value: string) {
      if (socket) {
        try {
          return await askSocket(socket, `${question}:${value}`, timeoutMs);
        } catch (err) {
          if (!(err instanceof SocketDown) || !exec) throw err;
          logger.warn({ socket }, 'key source socket is down; asking the program');
        }
      }
      return runProgram(exec!, [question, value], timeoutMs);
    },
  };
}

/** The start-up health check of a socket: can it be connected to? */
export function socketReachable(path: string, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const conn = createConnection({ path });
    const timer = setTimeout(() => {
      conn.destroy();
      resolve(false);
    }, timeoutMs);
    conn.on('connect', () => {
      clearTimeout(timer);
      conn.destroy();
      resolve(true);
    });
    conn.on('error', () => {
      clearTimeout(timer);
      resolve(false);
    });
  });
}
