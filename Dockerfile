# tokenwatch container image: the compiled CLI on Node 24.
FROM node:24-slim AS build
WORKDIR /app
COPY package.json package-lock.json tsconfig.json tsconfig.build.json ./
COPY exporter ./exporter
COPY dashboards ./dashboards
COPY scripts ./scripts
RUN npm ci --no-audit --no-fund && npm prune --omit=dev

FROM node:24-slim
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
