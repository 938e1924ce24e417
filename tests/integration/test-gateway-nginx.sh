#!/usr/bin/env bash
# tests/integration/test-gateway-nginx.sh -- every check of
# test-gateway.sh, through nginx with the shipped
# deploy/nginx/modelgate.conf: GET /metrics too, routed, with the client's
# REMOTE_ADDR and the Authorization header.  Run by `make check`.
HERE=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)
MG_SERVER=nginx exec bash "$HERE/test-gateway.sh" "$@"
