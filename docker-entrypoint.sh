#!/bin/sh
# The image's entrypoint. A first argument that is a `signalbox` subcommand runs the CLI, so that
# users' CI can check and test rules with the image alone:
#   docker run --rm -v "$PWD:/work" signalbox check /work/rules.yaml
# Anything else runs as given: by default the CMD, `node dist/src/main.js` (the proxy). `exec`
# replaces this shell, so node is PID 1 and receives docker stop's SIGTERM itself (graceful drain).
# Keep the list equal to CLI_COMMANDS in src/cli/commands.ts (test/deploy/entrypoint.test.ts checks).
set -e
case "${1:-}" in
  check|test|report|keys|spend|classifier|fake-openrouter|help|--help|-h)
    exec node "$(dirname "$0")/dist/src/cli/signalbox.js" "$@" ;;
esac
exec "$@"
