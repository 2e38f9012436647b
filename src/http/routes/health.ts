/**
 * Liveness, readiness and metrics: answered by every process, server or worker.
 */
import type { FastifyInstance } from 'fastify';
import type { Metrics } from '../../observability/metrics.js';
import { answersPing, type RedisClient } from '../../redis/connections.js';

export interface HealthRouteOptions {
  readonly redis: RedisClient;
  readonly metrics: Metrics;
}

const READY_PING_TIMEOUT_MS = 1000;

export async function healthRoutes(app: FastifyInstance, opts: HealthRouteOptions): Promise<void> {
  const { redis, metrics } = opts;

  app.get('/healthz', async () => ({ status: 'ok' }));

  app.get('/readyz', async (_request, reply) => {
    const ready = await answersPing(redis, READY_PING_TIMEOUT_MS);
    return reply.code(ready ? 200 : 503).send({ status: ready ? 'ready' : 'unavailable', redis: ready ? 'up' : 'down' });
  });

  app.get('/metrics', async (_request, reply) => {
    const body = await metrics.registry.metrics();
    return reply.type(metrics.registry.contentType).send(body);
  });
}
