// A webhook sink for the docker-compose stack and the paging test: Alertmanager posts its
// notifications here (POST /pager, POST /chat, any path names a receiver) and anyone can read
// what arrived (GET /pages, newest last; GET /pages/<receiver>). Keeps the last 1,000 in
// memory. Stands in for PagerDuty and Slack until real URLs are configured.
//   PORT=8080 node scripts/webhook-sink.ts
import { createServer, type Server } from 'node:http';

export interface Page {
  receiver: string;
  receivedAt: string;
  body: unknown;
}

export interface WebhookSink {
  url: string;
  pages(): readonly Page[];
  close(): Promise<void>;
}

const KEEP = 1000;

export function startWebhookSink(options: { port?: number; host?: string } = {}): Promise<WebhookSink> {
  const pages: Page[] = [];
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0]!;
    if (req.method === 'GET' && path === '/healthz') return void res.end('ok\n');
    if (req.method === 'GET' && (path === '/pages' || path.startsWith('/pages/'))) {
      const receiver = path.slice('/pages/'.length);
      res.setHeader('content-type', 'application/json');
      return void res.end(`${JSON.stringify(path === '/pages' ? pages : pages.filter((p) => p.receiver === receiver), null, 2)}\n`);
    }
    if (req.method !== 'POST') {
      res.statusCode = 405;
      return void res.end('POST a notification to /<receiver>, or GET /pages\n');
    }
    let body = '';
    req.on('data', (chunk: Buffer) => (body += chunk.toString()));
    req.on('end', () => {
      let parsed: unknown = body;
      try {
        parsed = JSON.parse(body);
      } catch {
        // kept as text
      }
      pages.push({ receiver: path.slice(1) || 'default', receivedAt: new Date().toISOString(), body: parsed });
      if (pages.length > KEEP) pages.shift();
      res.end('ok\n');
    });
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, options.host ?? '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      resolve({
        url: `http://${options.host === '0.0.0.0' ? '127.0.0.1' : (options.host ?? '127.0.0.1')}:${port}`,
        pages: () => pages,
        close: () => new Promise((done) => server.close(() => done())),
      });
    });
  });
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const sink = await startWebhookSink({ port: Number(process.env.PORT ?? 8080), host: '0.0.0.0' });
  process.stdout.write(`webhook sink listening on ${sink.url}: POST /<receiver>, GET /pages\n`);
  const stop = () => void sink.close().then(() => process.exit(0));
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}
