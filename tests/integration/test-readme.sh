#!/usr/bin/env bash
# tests/integration/test-readme.sh -- every code example of README.md
# marked to run ("<!-- example -->" before its fence: curl, Node, Python)
# runs as written against a stack of deploy/local: one of its own
# (MODELGATE_VAR in the test's directory, free ports, the mock upstream),
# with MODELGATE_KEY and MODELGATE_URL set as deploy/local up prints them.
# The only change to an example is the port: http://127.0.0.1:8080 becomes
# the test stack's.  Each must exit 0 and print no error object; the
# Node one imports the openai package as an ES module (node_modules of
# tests/integration beside it); the Python ones are skipped, saying so,
# when Python's openai package is not installed.  Needs the programs
# built in the source tree (deploy/local runs them from there).  Run by
# `make check`.

set -uo pipefail

HERE=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)
# shellcheck source=tests/integration/lib.sh
. "$HERE/lib.sh"

: "${MG_SRCDIR:=$(cd -- "$HERE/../.." && pwd -P)}"
: "${MG_BUILDDIR:=$MG_SRCDIR}"
export MG_SRCDIR MG_BUILDDIR
if [ ! -x "$MG_SRCDIR/app/modelgate-fcgi" ] || [ ! -x "$MG_SRCDIR/tests/mock/mock-upstream" ]; then
    # a build outside the source tree (make distcheck): deploy/local runs
    # the programs of the source tree
    printf '1..0 # SKIP deploy/local needs the programs built in the source tree\n'
    exit 77
fi
missing=()
for tool in lighttpd spawn-fcgi curl psql; do
    find_tool "$tool" >/dev/null || missing+=("$tool")
done
ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || missing+=("postgresql (server)")
mg_missing_exit "${missing[@]}"
mg_need_node_module openai

mg_lib_init readme
chmod 0711 "$MG_T" || bail "chmod $MG_T"
LOCAL=$MG_SRCDIR/deploy/local
export MODELGATE_VAR=$MG_T/var MODELGATE_NO_INSTALL=1 MODELGATE_NO_BUILD=1 MODELGATE_PROCS=1
unset OPENROUTER_API_KEY MODELGATE_UPSTREAM MODELGATE_UPSTREAM_KEY MODELGATE_KEY MODELGATE_URL
STARTED=0

cleanup_readme() {
    local rc=$?
    trap - EXIT INT TERM HUP
    set +e
    if [ "$STARTED" = 1 ]; then
        "$LOCAL" down >"$MG_T/down.out" 2>&1 || cat "$MG_T/down.out" | sed 's/^/# /'
    fi
    mg_finish "$rc"
}
mg_traps cleanup_readme
show_logs() {
    local f
    for f in "$MG_T"/up.out "$MODELGATE_VAR"/log/*.log; do
        [ -f "$f" ] || continue
        printf '# --- %s\n' "$f"
        tail -n 30 "$f" | sed 's/^/# /'
    done
}

EX=$MG_T/examples
mkdir -p "$EX" || bail "mkdir $EX"
if out=$(node "$HERE/readme-examples.cjs" "$MG_SRCDIR/README.md" "$EX" 2>&1) &&
    [ "$(grep -c '' <<<"$out")" -ge 3 ]; then
    tap_ok "README.md: $(grep -c '' <<<"$out") examples marked to run"
else
    bail "the README's examples" "$out"
fi
for lang in sh js python; do
    if ! grep -q " $lang " <<<"$out"; then
        tap_not_ok "the README has a $lang example marked to run"
    fi
done

port=$(free_port) && pgport=$(free_port) || bail "free ports"
STARTED=1
if MODELGATE_PORT=$port MODELGATE_PGPORT=$pgport "$LOCAL" up >"$MG_T/up.out" 2>&1; then
    tap_ok "deploy/local up (its own var/, port $port)"
else
    bail "deploy/local up" "$(tail -n 30 "$MG_T/up.out")"
fi
MODELGATE_KEY=$(sed -n 's/^MODELGATE_KEY=//p' "$MG_T/up.out" | tail -n 1)
MODELGATE_URL=$(sed -n 's/^MODELGATE_URL=//p' "$MG_T/up.out" | tail -n 1)
export MODELGATE_KEY MODELGATE_URL
check_eq "deploy/local up prints MODELGATE_KEY and MODELGATE_URL" \
    "${MODELGATE_KEY:0:3} $MODELGATE_URL" "mg- http://127.0.0.1:$port/v1"

# Node resolves an ES module's imports from its own directory up, never
# from NODE_PATH: the examples sit beside a node_modules of their own.
modules=$(node -e 'const p = require.resolve("openai");
    console.log(p.slice(0, p.lastIndexOf("/node_modules/") + "/node_modules".length))') &&
    ln -s "$modules" "$EX/node_modules" || bail "node_modules beside the examples"

python_openai=0
python3 -c 'import openai' >/dev/null 2>&1 && python_openai=1

while read -r file lang line; do
    desc="README.md line $line ($lang) runs as written"
    sed -i "s#http://127.0.0.1:8080#http://127.0.0.1:$port#g" "$file"
    case $lang in
        sh) run=(bash -e "$file") ;;
        js) run=(node "$file") ;;
        python)
            if [ "$python_openai" = 0 ]; then
                # still parsed: a syntax error is not waved through
                if err=$(python3 -c 'import ast, sys; ast.parse(open(sys.argv[1]).read())' "$file" 2>&1); then
                    tap_skip "$desc" "Python's openai package is not installed (pip install openai)"
                else
                    tap_not_ok "$desc: Python syntax" "$err"
                fi
                continue
            fi
            run=(python3 "$file")
            ;;
    esac
    if (cd "$EX" && timeout 60 "${run[@]}") >"$file.out" 2>"$file.err" </dev/null &&
        [ -s "$file.out" ] && ! grep -q '"error"' "$file.out"; then
        tap_ok "$desc"
    else
        tap_not_ok "$desc" "$(cat "$file" "$file.out" "$file.err" | head -n 60)"
    fi
done <<<"$out"

# `up` again on a database with many projects (a project list longer
# than a pipe holds): the stack and its key are left as they are
for ((i = 1; i <= 300; i++)); do
    "$LOCAL" cli project create "many-$i" >/dev/null 2>&1 || break
done
if MODELGATE_PORT=$port MODELGATE_PGPORT=$pgport "$LOCAL" up >"$MG_T/up2.out" 2>&1; then
    tap_ok "deploy/local up again, with $((i - 1)) more projects"
else
    tap_not_ok "deploy/local up again, with $((i - 1)) more projects" "$(tail -n 30 "$MG_T/up2.out")"
fi
check_eq "the second up keeps the demo key" \
    "$(sed -n 's/^MODELGATE_KEY=//p' "$MG_T/up2.out" | tail -n 1)" "$MODELGATE_KEY"

tap_done
