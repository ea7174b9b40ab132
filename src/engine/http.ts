// /healthz (the event loop answers), /readyz (the informer has synced), /metrics (Prometheus).
import http from 'node:http';
import type { Metrics } from './metrics.js';

export function startHealthServer(port: number, metrics: Metrics, ready: () => boolean): http.Server {
  const server = http.createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (path === '/healthz') return reply(res, 200, 'ok\n');
    if (path === '/readyz') return ready() ? reply(res, 200, 'ok\n') : reply(res, 503, 'informer not synced\n');
    if (path === '/metrics') {
      metrics.registry
        .metrics()
        .then((body) => reply(res, 200, body, metrics.registry.contentType))
        .catch((err: Error) => reply(res, 500, `${err.message}\n`));
      return;
    }
    reply(res, 404, 'not found\n');
  });
  server.listen(port);
  return server;
}

function reply(res: http.ServerResponse, code: number, body: string, type = 'text/plain; charset=utf-8'): void {
  res.writeHead(code, { 'content-type': type });
  res.end(body);
}
