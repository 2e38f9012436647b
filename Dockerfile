# syntax=docker/dockerfile:1
#
# cardproxy image: one image for every role (`start`, `serve`, `worker`, `replay`, `check-config`)
# and for the demo legacy card API (`--entrypoint node … dist/demo/legacy-api-main.js`).
#
#   docker build -t cardproxy .
#   docker run --rm -e REDIS_URL=redis://host.docker.internal:6379 -p 8080:8080 cardproxy
#   docker run --rm cardproxy serve --config deploy/cardproxy.compose.json
#
# The health check asks /healthz on 127.0.0.1:$PORT (default 8080). A config with another
# listen.port should set PORT too (PORT overrides listen.port). With listen.tls that port speaks
# TLS (and may require a client certificate): set HEALTHCHECK_URL to the plain-HTTP ops port,
# e.g. HEALTHCHECK_URL=http://127.0.0.1:9090/healthz for listen.opsPort 9090.

ARG NODE_IMAGE=node:24-bookworm-slim

# ---- build: all dependencies, TypeScript compiled to dist/ ----------------------------------
FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json tsconfig.console.json ./
COPY scripts ./scripts
COPY src ./src
RUN npm run build && rm -f dist/.tsbuildinfo

# ---- runtime: production dependencies, compiled code and configs, non-root --------------------
FROM ${NODE_IMAGE} AS runtime
ENV NODE_ENV=production
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force
COPY --from=build /app/dist ./dist
COPY config ./config
COPY deploy ./deploy
# Code and configs stay owned by root (read-only for the service); the process runs as `node`.
USER node
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=15s --retries=3 \
  CMD ["node", "-e", "fetch(process.env.HEALTHCHECK_URL || 'http://127.0.0.1:' + (process.env.PORT || 8080) + '/healthz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
ENTRYPOINT ["node", "dist/cli.js"]
CMD ["start", "--config", "config/default.json"]
