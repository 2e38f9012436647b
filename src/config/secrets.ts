/**
 * The secrets a config holds, for the logger to scrub from every line: the Redis password, Plain's
 * signing secrets and API key, the admin token, upstream header values and signing secrets.
 */
import type { Config } from './schema.js';

export function configSecrets(config: Config): string[] {
  const secrets: string[] = [...config.plain.signingSecrets];
  if (config.admin.token) secrets.push(config.admin.token);
  if (config.plain.api) secrets.push(config.plain.api.apiKey);
  for (const redisUrl of [config.redis.url, ...config.redis.clusterNodes]) {
    try {
      const url = new URL(redisUrl);
      if (url.password) secrets.push(decodeURIComponent(url.password), url.password);
    } catch {
      // validated at load: always a URL
    }
  }
  for (const upstream of Object.values(config.upstreams)) {
    secrets.push(...Object.values(upstream.headers));
    if (upstream.signingSecret) secrets.push(upstream.signingSecret);
    // An `Authorization: Bearer <token>` header: the token alone may show up too.
    for (const value of Object.values(upstream.headers)) {
      const token = /^\S+\s+(\S+)$/.exec(value)?.[1];
      if (token) secrets.push(token);
    }
  }
  return secrets;
}
