#!/usr/bin/env bash
# tests/integration/test-quotas-lease.sh -- test-quotas.sh with quota.admission =
# "lease": the same checks (and, where the mode differs, its own) against
# responders that admit from leases.  Run by `make check`.
MG_TEST_ADMISSION=lease
export MG_TEST_ADMISSION
exec bash "$(dirname -- "${BASH_SOURCE[0]}")/test-quotas.sh" "$@"
