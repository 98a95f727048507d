import { readdirSync, readFileSync } from 'node:fs';

// Runs an async operation repeatedly for about `ms` milliseconds and reports operations per second.
export async function opsPerSecond(fn: () => Promise<unknown>, ms = 300): Promise<number> {
  for (let i = 0; i < 3; i++) await fn(); // warm-up (JIT, key caches)
  let n = 0;
  const start = performance.now();
  let elapsed = 0;
  while (elapsed < ms) {
    await fn();
    n++;
    elapsed = performance.now() - start;
  }
  return Math.round((n / elapsed) * 1000);
}

export const SIZES = [1024, 16 * 1024, 256 * 1024] as const;
export const sizeName = (n: number) => `${n / 1024}KiB`;

/**
 * Where the CPU went during a load phase: this (server) process, PostgreSQL's processes and the
 * whole machine, read from /proc (Linux; elsewhere only the server's share is reported).
 */
export interface CpuSample {
  server: NodeJS.CpuUsage;
  /** When the server measured is another process (the bare baseline): its ticks. */
  serverTicks?: number;
  postgresTicks: number | undefined;
  machine: { busy: number; total: number } | undefined;
  /** The event loop's busy/idle time so far. */
  elu: ReturnType<typeof performance.eventLoopUtilization>;
}

/** CPU ticks (user + system) one process has used so far, from /proc (Linux). */
export function pidTicks(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(fields[11]) + Number(fields[12]);
  } catch {
    return undefined;
  }
}

function procTicks(name: string): number | undefined {
  try {
    let ticks = 0;
    for (const pid of readdirSync('/proc')) {
      if (!/^\d+$/.test(pid)) continue;
      try {
        const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
        const close = stat.lastIndexOf(')');
        if (stat.slice(stat.indexOf('(') + 1, close) !== name) continue;
        const fields = stat.slice(close + 2).split(' ');
        ticks += Number(fields[11]) + Number(fields[12]); // utime + stime
      } catch {
        // the process ended while we looked
      }
    }
    return ticks;
  } catch {
    return undefined;
  }
}

function machineTicks(): { busy: number; total: number } | undefined {
  try {
    const cpu = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
    const total = cpu.reduce((a, b) => a + b, 0);
    return { busy: total - cpu[3]! - (cpu[4] ?? 0), total };
  } catch {
    return undefined;
  }
}

export function cpuSample(serverPid?: number): CpuSample {
  return {
    server: process.cpuUsage(),
    ...(serverPid === undefined ? {} : { serverTicks: pidTicks(serverPid) }),
    postgresTicks: procTicks('postgres'),
    machine: machineTicks(),
    elu: performance.eventLoopUtilization(),
  };
}

/**
 * CPU milliseconds per request in each place, how busy the machine was, and this process's
 * event-loop utilisation, between two samples.
 */
export function cpuPerRequest(a: CpuSample, b: CpuSample, requests: number): Record<string, number> {
  const TICK_MS = 10; // USER_HZ is 100 on Linux
  const out: Record<string, number> = {};
  if (a.serverTicks !== undefined && b.serverTicks !== undefined) {
    out.serverMs = round(((b.serverTicks - a.serverTicks) * TICK_MS) / requests);
  } else {
    out.serverMs = round((b.server.user - a.server.user + b.server.system - a.server.system) / 1000 / requests);
    out.serverSystemMs = round((b.server.system - a.server.system) / 1000 / requests);
  }
  if (a.postgresTicks !== undefined && b.postgresTicks !== undefined)
    out.postgresMs = round(((b.postgresTicks - a.postgresTicks) * TICK_MS) / requests);
  if (a.machine && b.machine) {
    out.machineMs = round(((b.machine.busy - a.machine.busy) * TICK_MS) / requests);
    out.machineBusyShare = round((b.machine.busy - a.machine.busy) / (b.machine.total - a.machine.total));
  }
  if (a.serverTicks === undefined) out.eventLoopUtilization = Number(performance.eventLoopUtilization(b.elu, a.elu).utilization.toFixed(2));
  return out;
}

const round = (x: number) => Number(x.toFixed(3));
