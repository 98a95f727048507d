// A stable address for a server that stops and starts again: a TCP forwarder on a loopback port the
// test holds for its whole life (port 0, so never a fixed port and never one another test could take
// in between), passing connections to whichever port the real server listens on now. With no server
// behind it, connections are reset, as a stopped server's closed port refuses them.
import { connect, createServer, type AddressInfo, type Socket } from 'node:net';

export interface TcpFrontDoor {
  url: string;
  /** The port of the server behind the door, or null while it is down. */
  setBackend(port: number | null): void;
  close(): Promise<void>;
}

export async function startTcpFrontDoor(backend: number | null): Promise<TcpFrontDoor> {
  let target = backend;
  const open = new Set<Socket>();
  const server = createServer((client) => {
    if (target === null) return void client.resetAndDestroy();
    const upstream = connect(target, '127.0.0.1');
    for (const s of [client, upstream]) {
      open.add(s);
      s.on('error', () => {}).on('close', () => {
        open.delete(s);
        client.destroy();
        upstream.destroy();
      });
    }
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    setBackend: (p) => {
      target = p;
    },
    close: async () => {
      for (const s of open) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
