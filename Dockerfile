# tokenwatch container image: the compiled CLI on Node 24. The embedded ClickHouse engine
# (optional package chdb, ~540 MB) is left out: in a container, point CLICKHOUSE_URL at a
# ClickHouse server (docker-compose.yml does).
FROM node:24.21.0-slim AS build
WORKDIR /app
COPY package.json package-lock.json tsconfig.json tsconfig.build.json ./
COPY exporter ./exporter
COPY dashboards ./dashboards
COPY clickhouse ./clickhouse
COPY scripts ./scripts
# npm install, not npm ci: the lock cannot list chdb's engine packages for other platforms.
RUN npm install --no-audit --no-fund && npm prune --omit=dev --omit=optional

FROM node:24.21.0-slim
WORKDIR /app
ENV NODE_ENV=production TOKENWATCH_STATE_DIR=/var/lib/tokenwatch
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY --from=build /app/package.json ./
RUN mkdir -p /var/lib/tokenwatch && chown node:node /var/lib/tokenwatch
USER node
EXPOSE 9464
VOLUME /var/lib/tokenwatch
ENTRYPOINT ["node", "dist/exporter/src/cli/main.js"]
CMD ["run"]
