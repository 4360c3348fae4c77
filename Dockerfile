# syntax=docker/dockerfile:1
#
# ftp-sync: one image for every role (poller, worker) and the Vela stand-in.
#   docker build -t ftp-sync .
#   docker run --rm ftp-sync --help
#   docker compose exec worker ftp-sync status          (see docker-compose.yml)
#
# Node LTS; override with --build-arg NODE_IMAGE=node:22-bookworm-slim.
ARG NODE_IMAGE=node:24-bookworm-slim

# --- build: all dependencies, compile TypeScript to dist/ ---
FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build && chmod +x dist/src/cli.js

# --- deps: production dependencies only ---
# --omit=optional too: without it, valibot's optional peer `typescript` (23 MB) comes along; the other
# optional packages are msgpackr's native speed-up, which has a pure-JS fallback.
FROM ${NODE_IMAGE} AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --omit=optional --no-audit --no-fund && npm cache clean --force

# --- runtime ---
FROM ${NODE_IMAGE} AS runtime
# tini is PID 1: it forwards SIGTERM to node (which then finishes its transfers) and reaps zombies.
RUN apt-get update \
  && apt-get install -y --no-install-recommends tini \
  && rm -rf /var/lib/apt/lists/*
ENV NODE_ENV=production \
    FTPSYNC_CONFIG=/app/config/ftp-sync.yaml \
    FTPSYNC_HEALTH_URL=http://127.0.0.1:9464/healthz
WORKDIR /app
COPY --from=deps --chown=root:root /app/node_modules ./node_modules
COPY --from=build --chown=root:root /app/dist ./dist
COPY --chown=root:root package.json ./
# `ftp-sync` on the PATH, for `docker compose exec worker ftp-sync status`.
RUN ln -s /app/dist/src/cli.js /usr/local/bin/ftp-sync
# The code stays root-owned and read-only to the process; it runs as the image's unprivileged user.
USER node
# The admin HTTP port (health, metrics, dashboard) when http.enabled.
EXPOSE 9464
# Needs http.enabled (the port and host of FTPSYNC_HEALTH_URL); no curl in the image, node's fetch does it.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD ["node", "-e", "fetch(process.env.FTPSYNC_HEALTH_URL,{signal:AbortSignal.timeout(4000)}).then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
# `docker run IMAGE status --json` and compose's `command: start --role worker` are ftp-sync commands.
# --max-semi-space-size=32 (MiB; Node's default is 16): the chunks of a long transfer die young
# instead of piling up in the old generation between major GCs. Measured with four 3 GiB uploads at
# once: peak RSS 207 -> 167 MiB (npm run bench uses these flags; its memory table shows both).
ENTRYPOINT ["/usr/bin/tini", "--", "node", "--max-semi-space-size=32", "dist/src/cli.js"]
CMD ["start"]
