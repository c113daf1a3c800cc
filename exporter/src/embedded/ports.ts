import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';

/**
 * The lowest port of the kernel's ephemeral range (Linux; the usual default elsewhere).
 * Outgoing connections and binds to port 0 take their local port from that range.
 */
function ephemeralLow(): number {
  try {
    const low = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]);
    if (Number.isInteger(low)) return low;
  } catch {
    // Not Linux.
  }
  return 49152;
}

/** Ports below the ephemeral range that are picked from (above the well-known services). */
const LOWEST_PICKED = 10_000;

function bindable(port: number): Promise<number | undefined> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', (error: NodeJS.ErrnoException) => (error.code === 'EADDRINUSE' || error.code === 'EACCES' ? resolve(undefined) : reject(error)));
    server.listen(port, '127.0.0.1', () => {
      const address = server.address();
      const bound = typeof address === 'object' && address ? address.port : undefined;
      server.close(() => resolve(bound));
    });
  });
}

/**
 * A free TCP port on 127.0.0.1, for a server that another process binds a moment later. Picked
 * below the ephemeral range: a port the OS hands out for port 0 is also the next local port of
 * some outgoing connection (a PostgreSQL client, a fetch), which could take it before that
 * server binds it. That happened in the tests under load. Only when no port below the range is
 * free does the OS pick.
 */
export async function freePortOnLoopback(): Promise<number> {
  const low = ephemeralLow();
  for (let attempt = 0; attempt < 50 && low - 1 > LOWEST_PICKED; attempt++) {
    const port = LOWEST_PICKED + Math.floor(Math.random() * (low - LOWEST_PICKED));
    const bound = await bindable(port);
    if (bound !== undefined) return bound;
  }
  return (await bindable(0))!;
}
