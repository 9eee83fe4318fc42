#!/usr/bin/env bash
# Proves the container image for real (issue #6), as CI does: builds the image on the local
# stand-in for node:24-bookworm-slim (../shared/docker/base-image.sh), runs it with --network host
# against the project's fake OpenRouter on the host, and checks: /healthz, a non-streaming and a
# streaming completion, /metrics, a rules edit from the host taking effect without a restart, the
# process running as uid 1000, and `docker stop` ending it cleanly (exit code 0) within the grace
# period. Then runs the CLI through the image as users' CI would (`check` and `test` on the
# shipped files mounted at /work, a broken file giving exit 1, `fake-openrouter` stopped by
# `docker stop`), and validates the compose stack's files with the real tools. Stops and removes
# what it started. Needs: root (Docker), Node (for the fake upstream), curl.
set -euo pipefail
cd "$(dirname "$0")/.."
log() { printf '[docker-e2e] %s\n' "$*"; }
# Output goes to a file before it is searched: `curl ... | grep -q` fails under pipefail whenever
# grep exits before curl has written everything (curl then dies of SIGPIPE).
fail() { printf '[docker-e2e] FAIL: %s\n' "$*" >&2; exit 1; }

engine_was_running=false
docker info >/dev/null 2>&1 && engine_was_running=true
bash ../shared/docker/base-image.sh

tag="signalbox:e2e-$$"
name="signalbox-e2e-$$"
work=$(mktemp -d)
fake_pid=""
cleanup() {
  docker rm -f "$name" "$name-fake" >/dev/null 2>&1 || true
  docker rmi -f "$tag" >/dev/null 2>&1 || true
  [[ -n $fake_pid ]] && kill "$fake_pid" 2>/dev/null || true
  rm -rf "$work"
  if [[ $engine_was_running == false && -f /tmp/dockerd.pid ]]; then
    kill "$(cat /tmp/dockerd.pid)" 2>/dev/null || true
  fi
}
trap cleanup EXIT

log "building the image (classic builder)"
DOCKER_BUILDKIT=0 docker build --network host -t "$tag" . >"$work/build.log" 2>&1 || { tail -30 "$work/build.log"; fail "docker build"; }

free_port() { node -e "const s=require('net').createServer().listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})"; }
fake_port=$(free_port)
port=$(free_port)

log "fake OpenRouter on 127.0.0.1:$fake_port"
npm run build --silent
node dist/src/cli/signalbox.js fake-openrouter --port "$fake_port" --quiet >"$work/fake.log" 2>&1 &
fake_pid=$!

mkdir -p "$work/rules"
write_rules() { # rule name, model
  # Written in place (same inode), as `>` does: a single-file or directory bind mount both see it.
  printf 'version: 1\nrules:\n  - name: %s\n    route: { model: %s }\n' "$1" "$2" >"$work/rules/rules.yaml"
}
write_rules e2e-first openai/gpt-4o-mini
chmod -R a+rX "$work"

log "running the container on port $port"
docker run -d --name "$name" --network host \
  -e PORT="$port" -e OPENROUTER_BASE_URL="http://127.0.0.1:$fake_port/api/v1" -e OPENROUTER_API_KEY=sk-or-e2e \
  -e RULES_POLL_INTERVAL_MS=500 -e SHUTDOWN_GRACE_MS=20000 \
  -v "$work/rules:/etc/signalbox/rules:ro" "$tag" >/dev/null

base="http://127.0.0.1:$port"
for _ in $(seq 1 60); do curl -fsS "$base/readyz" >/dev/null 2>&1 && break; sleep 0.5; done
curl -fsS "$base/healthz" >"$work/healthz.json" && grep -q '"ok"' "$work/healthz.json" || { docker logs "$name" | tail -20; fail "/healthz"; }
log "ok: /healthz"

body='{"model":"auto","messages":[{"role":"user","content":"hi"}]}'
headers=$(curl -fsS -D - -o "$work/chat.json" "$base/v1/chat/completions" -H 'content-type: application/json' -d "$body")
grep -qi '^x-signalbox-rule: e2e-first' <<<"$headers" || fail "non-streaming: rule header missing: $headers"
grep -q '"choices"' "$work/chat.json" || fail "non-streaming: no choices"
log "ok: non-streaming completion (rule e2e-first)"

curl -fsSN "$base/v1/chat/completions" -H 'content-type: application/json' \
  -d '{"model":"auto","stream":true,"messages":[{"role":"user","content":"hi"}]}' >"$work/stream.txt"
grep -q '"usage"' "$work/stream.txt" || fail "streaming: no usage chunk"
[[ $(tail -c 20 "$work/stream.txt") == *'data: [DONE]'* ]] || fail "streaming: no [DONE] at the end"
log "ok: streaming completion"

curl -fsS "$base/metrics" >"$work/metrics.txt" || fail "/metrics"
grep -Eq '^signalbox_requests_total\{endpoint="chat",rule="e2e-first"' "$work/metrics.txt" || fail "/metrics has no chat request counted for rule e2e-first"
log "ok: /metrics"

uid=$(docker exec "$name" sh -c 'id -u')
[[ $uid == 1000 ]] || fail "container process runs as uid $uid, not 1000"
pid1=$(docker exec "$name" sh -c 'cat /proc/1/cmdline | tr "\0" " "')
[[ $pid1 == node\ dist/src/main.js* ]] || fail "PID 1 is '$pid1', not node"
log "ok: uid 1000, PID 1 is node"

# The catalog fetched at start is kept in the image's volume, which the node user can write.
for _ in $(seq 1 20); do docker exec "$name" test -s /var/lib/signalbox/catalog.json && break; sleep 0.5; done
docker exec "$name" test -s /var/lib/signalbox/catalog.json || { docker logs "$name" | tail -20; fail "no catalog in /var/lib/signalbox (DATA_DIR)"; }
log "ok: catalog kept in DATA_DIR"

write_rules e2e-second anthropic/claude-3.5-sonnet
reloaded=false
for _ in $(seq 1 40); do
  curl -fsS -D "$work/reload-headers.txt" -o /dev/null "$base/v1/chat/completions" -H 'content-type: application/json' -d "$body" || true
  if grep -qi '^x-signalbox-rule: e2e-second' "$work/reload-headers.txt"; then
    reloaded=true; break
  fi
  sleep 0.25
done
[[ $reloaded == true ]] || { docker logs "$name" | tail -20; fail "rules edit not picked up"; }
[[ $(docker inspect -f '{{.RestartCount}}' "$name") == 0 ]] || fail "the container restarted"
log "ok: rules edited on the host took effect without a restart"

start=$(date +%s)
docker stop -t 30 "$name" >/dev/null
elapsed=$(( $(date +%s) - start ))
code=$(docker inspect -f '{{.State.ExitCode}}' "$name")
[[ $code == 0 ]] || { docker logs "$name" | tail -20; fail "exit code $code after docker stop"; }
(( elapsed < 30 )) || fail "docker stop took ${elapsed}s: killed, not stopped"
docker logs "$name" >"$work/container.log" 2>&1
grep -q '"msg":"stopped"' "$work/container.log" || fail "no 'stopped' log line"
log "ok: docker stop: exit code 0 after ${elapsed}s"

log "the CLI through the image, as in a user's CI"
docker run --rm -v "$PWD:/work:ro" "$tag" check /work/rules.yaml >"$work/check.txt" 2>&1 || { cat "$work/check.txt"; fail "check /work/rules.yaml"; }
grep -q '^ok: /work/rules.yaml: ' "$work/check.txt" || fail "check: $(cat "$work/check.txt")"
log "ok: check /work/rules.yaml"
docker run --rm -v "$PWD:/work:ro" "$tag" test /work/rules.test.yaml >"$work/cases.txt" 2>&1 || { cat "$work/cases.txt"; fail "test /work/rules.test.yaml"; }
grep -q ' 0 failed$' "$work/cases.txt" || fail "test: $(tail -3 "$work/cases.txt")"
log "ok: test /work/rules.test.yaml"
mkdir -p "$work/broken"
printf 'version: 1\nrules:\n  - name: broken\n    route: { tier: nowhere }\n' >"$work/broken/rules.yaml"
chmod -R a+rX "$work/broken"
code=0
docker run --rm -v "$work/broken:/work:ro" "$tag" check /work/rules.yaml >"$work/broken.txt" 2>&1 || code=$?
[[ $code == 1 ]] || { cat "$work/broken.txt"; fail "check of a broken file: exit code $code, not 1"; }
grep -q 'nowhere' "$work/broken.txt" || fail "check of a broken file does not name the problem: $(cat "$work/broken.txt")"
log "ok: check of a broken file exits 1"

fake_in_image=$(free_port)
docker run -d --name "$name-fake" --network host "$tag" fake-openrouter --port "$fake_in_image" --quiet >/dev/null
for _ in $(seq 1 40); do curl -fsS "http://127.0.0.1:$fake_in_image/api/v1/models" >"$work/models.json" 2>/dev/null && break; sleep 0.25; done
grep -q '"canonical_slug":"openai/gpt-4o-mini"' "$work/models.json" || { docker logs "$name-fake" | tail -20; fail "fake-openrouter in the image: no model list"; }
docker stop -t 10 "$name-fake" >/dev/null
code=$(docker inspect -f '{{.State.ExitCode}}' "$name-fake")
docker rm -f "$name-fake" >/dev/null
[[ $code == 0 ]] || fail "fake-openrouter in the image: exit code $code after docker stop"
log "ok: fake-openrouter in the image, stopped with exit code 0"

log "compose stack files"
command -v docker-compose >/dev/null || fail "docker-compose is not installed"
# The stack needs the server key (client keys are on); any value validates the file.
OPENROUTER_API_KEY=e2e docker-compose -f docker-compose.yml config -q || fail "docker-compose config"
log "ok: docker-compose config"
command -v promtool >/dev/null || fail "promtool is not installed"
promtool check config config/prometheus/prometheus.yml >/dev/null || fail "promtool check config"
log "ok: promtool check config"
log "all container checks passed"
