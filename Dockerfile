# Signalbox container image. Classic builder compatible (no BuildKit-only syntax).
#   docker build -t signalbox .
#   docker run --rm -p 8080:8080 -e OPENROUTER_API_KEY -v "$PWD/rules.yaml:/etc/signalbox/rules/rules.yaml:ro" signalbox
#   docker run --rm -v "$PWD:/work" signalbox check /work/rules.yaml     (the CLI: see docker-entrypoint.sh)

# --- build: compile the TypeScript, then keep production dependencies only -----------------
FROM node:24-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npx tsc -p tsconfig.build.json && npm prune --omit=dev --no-audit --no-fund

# --- runtime: compiled code and production dependencies, no sources, no tests --------------
FROM node:24-bookworm-slim
ENV NODE_ENV=production \
    HOST=0.0.0.0 \
    PORT=8080 \
    CONFIG_FILE=/etc/signalbox/signalbox.yaml \
    RULES_FILE=/etc/signalbox/rules/rules.yaml \
    DATA_DIR=/var/lib/signalbox
WORKDIR /app
COPY --from=build /app/package.json ./package.json
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist/src ./dist/src
# The shipped classifier model: dist/src/classify/model.js reads ../../../models/classifier-v1.json.
COPY models ./models
COPY docker-entrypoint.sh ./docker-entrypoint.sh
# Defaults, meant to be replaced by mounts: the rules directory (a bind mount or a Kubernetes
# ConfigMap; the directory is watched, so edits and ConfigMap updates reload without a restart).
COPY config/signalbox.yaml /etc/signalbox/signalbox.yaml
COPY rules.yaml /etc/signalbox/rules/rules.yaml
# The last good model catalog (docs/catalog.md), so a restart without network starts with it. Owned
# by the unprivileged user before the VOLUME line: a named volume is created with this ownership,
# and changes to the directory after VOLUME would be discarded.
RUN mkdir -p /var/lib/signalbox && chown node:node /var/lib/signalbox
VOLUME ["/var/lib/signalbox"]
USER node
EXPOSE 8080
# No curl in the image: Node's own fetch asks /healthz.
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.PORT||8080)+'/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
# A signalbox subcommand as the first argument runs the CLI; anything else runs as given. The
# script execs it, so node itself is PID 1 and receives SIGTERM (graceful shutdown), not sh or npm.
# Run through sh: it needs no execute bit from the build context.
ENTRYPOINT ["sh", "/app/docker-entrypoint.sh"]
CMD ["node", "dist/src/main.js"]
