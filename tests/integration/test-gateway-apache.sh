#!/usr/bin/env bash
# tests/integration/test-gateway-apache.sh -- every check of
# test-gateway.sh, through Apache httpd 2.4 (mod_proxy_fcgi to the
# responders' unix socket) with the shipped deploy/apache/modelgate.conf:
# GET /metrics too, routed, with the client's REMOTE_ADDR and, for the
# token, the Authorization header (CGIPassAuth).  Run by `make check`.
HERE=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)
MG_SERVER=apache exec bash "$HERE/test-gateway.sh" "$@"
