#!/usr/bin/env bash
# tests/integration/test-install.sh -- the deployment without systemd, as
# the README describes it, from make install on: the tree installed into a
# temporary DESTDIR; an unprivileged user that owns the responders; the
# configuration and the provider key file readable by its group only; the
# CLI run as root with the database role named in database.conninfo (and
# the hint it gives when it is not); the responders started by the
# installed deploy/spawn-fcgi/modelgate-spawn as that user, with their
# log file; the reasons a responder cannot start, said by the wrapper and
# on the responder's standard error; then a copy of Debian's stock
# /etc/apache2 with its default site enabled and the installed
# deploy/apache/modelgate.conf included inside its <VirtualHost>, on its
# own port: chat, a stream, /v1/models/openai%2Fgpt-4o-mini with curl and
# with the openai npm client's models.retrieve.  Needs root (useradd,
# spawn-fcgi -u); skipped otherwise.  Run by `make check`.

set -uo pipefail

HERE=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)
# shellcheck source=tests/integration/lib.sh
. "$HERE/lib.sh"

if [ "$(id -u)" -ne 0 ]; then
    printf '1..0 # SKIP needs root (useradd, responders run as another user)\n'
    exit 77
fi
if [ ! -f /etc/apache2/apache2.conf ] || [ ! -f /etc/apache2/sites-available/000-default.conf ]; then
    mg_missing_exit "Debian's /etc/apache2 (apache2)"
fi
mg_script_start "$0" spawn-fcgi apache2 a2enmod runuser useradd userdel make
mg_need_node_module openai

mg_stack_test install
USER_MADE=
cleanup_install() {
    local rc=$?
    trap - EXIT INT TERM HUP
    set +e
    stop_stack
    wait 2>/dev/null
    if [ -n "$USER_MADE" ]; then
        userdel "$USER_MADE" >/dev/null 2>&1 || printf '# could not remove user %s\n' "$USER_MADE"
    fi
    if [ "${DB_CREATED:-0}" = 1 ] && [ -n "${ROLE:-}" ]; then
        dropdb --if-exists "$MG_DB" >/dev/null 2>&1
        DB_CREATED=0
        psql -X -q -d postgres -c "DROP ROLE IF EXISTS \"$ROLE\"" >/dev/null 2>&1
    fi
    mg_finish "$rc"
}
mg_traps cleanup_install

show_logs() {
    local f
    for f in "$MG_T"/log/*.log "$MG_T"/apache-log/*.log "$MG_T"/*.out "$MG_T"/*.err; do
        [ -f "$f" ] || continue
        printf '# --- %s\n' "$f"
        tail -n 30 "$f" | sed 's/^/# /'
    done
}

chmod 0711 "$MG_T" || bail "chmod $MG_T"
web=$(mg_web_user)
WEB_USER=${web% *}
WEB_GROUP=${web#* }

# ---------------------------------------------------------------------------
# make install into a temporary DESTDIR.

DEST=$MG_T/dest
# (a make of its own: not the jobserver of a make check that runs this)
if out=$(env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL make -C "$MG_BUILDDIR" install DESTDIR="$DEST" 2>&1); then
    tap_ok "make install DESTDIR=…"
else
    bail "make install DESTDIR=…" "$(tail -n 30 <<<"$out")"
fi
IFCGI=$(find "$DEST" -path '*/bin/modelgate-fcgi' -type f | head -n 1)
ICLI=$(find "$DEST" -path '*/bin/modelgate' -type f | head -n 1)
SHARE=$(find "$DEST" -path '*/share/modelgate' -type d | head -n 1)
SPAWN=$SHARE/deploy/spawn-fcgi/modelgate-spawn
if [ -x "$IFCGI" ] && [ -x "$ICLI" ] && [ -x "$SPAWN" ] && [ -d "$SHARE/sql" ] &&
    [ -f "$SHARE/deploy/apache/modelgate.conf" ] && [ -f "$SHARE/errors/503.html" ]; then
    tap_ok "installed: the programs, the SQL, the wrapper, the Apache file, the error documents"
else
    bail "installed files" "$(cd "$DEST" && find . -type f | head -n 40)"
fi
export MODELGATE_SQL_DIR=$SHARE/sql

# ---------------------------------------------------------------------------
# The user, the configuration, the key file, the database role.

RUN_USER=mgi$$
[ "${#RUN_USER}" -le 30 ] || RUN_USER=mgi${RANDOM}
if out=$(useradd --system --user-group --no-create-home --home-dir /nonexistent \
    --shell /usr/sbin/nologin "$RUN_USER" 2>&1); then
    USER_MADE=$RUN_USER
    tap_ok "useradd --system $RUN_USER"
else
    bail "useradd $RUN_USER" "$out"
fi

mg_fresh_db install
ROLE=$RUN_USER
ROLE_PW=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')
out=$(psql -X -q -v ON_ERROR_STOP=1 -d postgres -v role="$ROLE" -v pw="$ROLE_PW" -v db="$MG_DB" 2>&1 <<'SQL'
CREATE ROLE :"role" LOGIN PASSWORD :'pw';
ALTER DATABASE :"db" OWNER TO :"role";
SQL
) || bail "the database role" "$out"

PROVIDER_KEY=sk-mock-$RANDOM$RANDOM
start_mock --require-key "$PROVIDER_KEY" >"$MG_T/mock-start.txt" 2>&1 ||
    bail "the mock upstream starts" "$(cat "$MG_T/mock-start.txt")"

ETC=$MG_T/etc
mkdir -m 0755 "$ETC" || bail "mkdir etc"
# as the README: the key in a file of its own, read by the responders'
# group and root; the password of the role in a libpq passfile, mode 0600
# and the user's (root reads it too)
install -m 640 -g "$RUN_USER" /dev/null "$ETC/upstream.key" &&
    printf '%s\n' "$PROVIDER_KEY" >"$ETC/upstream.key" &&
    install -m 600 -o "$RUN_USER" /dev/null "$ETC/pgpass" &&
    printf '%s:%s:%s:%s:%s\n' "${PGHOST:-localhost}" "${PGPORT:-5432}" "$MG_DB" "$ROLE" "$ROLE_PW" >"$ETC/pgpass" ||
    bail "key file and passfile"

CONNINFO="host=${PGHOST:-localhost} port=${PGPORT:-5432} dbname=$MG_DB user=$ROLE passfile=$ETC/pgpass"
# write_conf FILE [EXTRA SETTINGS]: the configuration the README's
# no-systemd section builds; the log goes to standard error (log_file
# unset), which modelgate-spawn appends to its log file.
write_conf() {
    cat >"$1" <<EOF
# test-install.sh
database = {
  conninfo = $(libconfig_quote "$CONNINFO");
  connect_timeout = 2;
};
upstream = {
  base_url = $(libconfig_quote "$MOCK_URL/api/v1");
  key_file = $(libconfig_quote "$ETC/upstream.key");
};
server = { threads = 4; shutdown_grace = 5; };
catalog = { refresh_interval = 0; };
reconcile = { max_rps = 0; };
report = { dashboard_dir = $(libconfig_quote "$SHARE/dashboard"); };
${2:-}
EOF
    chgrp "$RUN_USER" "$1" && chmod 640 "$1"
}
CONF=$ETC/modelgate.conf
write_conf "$CONF" || bail "write $CONF"

# The CLI as root, without the PG* variables of the test's Postgres: it
# uses the configuration's conninfo and reads the key file itself.
root_cli() {
    env -u PGUSER -u PGPASSWORD -u PGHOST -u PGPORT -u PGDATABASE "$ICLI" -c "$CONF" "$@"
}
check "as root: modelgate db migrate, the role named in database.conninfo" root_cli db migrate
if out=$(root_cli models sync 2>&1) && [ "$(sql 'SELECT count(*) > 0 FROM models')" = t ]; then
    tap_ok "as root: modelgate models sync reads upstream.key_file itself (the mock requires the key)"
else
    tap_not_ok "as root: modelgate models sync reads upstream.key_file itself (the mock requires the key)" "$out"
fi
root_cli project create inst >/dev/null 2>&1
KEY=$(root_cli key create inst 2>"$MG_T/key.err") || bail "key create" "$(cat "$MG_T/key.err")"

# As in the issue: peer authentication over the unix socket, no role named:
# Postgres knows no role "root"; the CLI says how to pick one.
SOCKDIR=$(sql_now 'SHOW unix_socket_directories' | cut -d, -f1)
PEER_CONF=$MG_T/peer.conf
cat >"$PEER_CONF" <<EOF
database = { conninfo = $(libconfig_quote "host=$SOCKDIR port=${PGPORT:-5432} dbname=$MG_DB"); };
upstream = { key_file = $(libconfig_quote "$ETC/upstream.key"); };
EOF
out=$(env -u PGUSER -u PGPASSWORD -u PGHOST -u PGPORT "$ICLI" -c "$PEER_CONF" project list 2>&1)
rc=$?
if [ "$rc" = 1 ] && [[ $out == *'"root"'* ]] && [[ $out == *"name the role in database.conninfo"* ]]; then
    tap_ok "as root under peer authentication: exit 1, the role to pick named"
else
    tap_not_ok "as root under peer authentication: exit 1, the role to pick named" "rc $rc: $out"
fi

# ---------------------------------------------------------------------------
# modelgate-spawn refuses what the responders could not start with, and
# says why.

LOG=$MG_T/log/modelgate-fcgi.log
spawn() {
    env -u PGUSER -u PGPASSWORD -u PGHOST -u PGPORT -u PGDATABASE \
        MODELGATE_SOCKET="$MG_T/run/gateway.sock" MODELGATE_PROCS=2 \
        MODELGATE_CONFIG="${1:-$CONF}" MODELGATE_USER="$RUN_USER" MODELGATE_GROUP="$RUN_USER" \
        MODELGATE_WEB_GROUP="$WEB_GROUP" MODELGATE_LOG="$LOG" MODELGATE_FCGI="$IFCGI" \
        MODELGATE_PIDFILE="$MG_T/run/modelgate-fcgi.pid" "$SPAWN"
}

chmod 600 "$CONF"
out=$(spawn 2>&1)
rc=$?
chmod 640 "$CONF"
if [ "$rc" = 1 ] && [[ $out == *"not readable by user '$RUN_USER'"* ]]; then
    tap_ok "modelgate-spawn: a configuration the user cannot read is refused, named"
else
    tap_not_ok "modelgate-spawn: a configuration the user cannot read is refused, named" "rc $rc: $out"
fi

chmod 600 "$ETC/upstream.key"
out=$(spawn 2>&1)
rc=$?
if [ "$rc" = 1 ] && [[ $out == *"upstream.key_file"*"Permission denied"* ]]; then
    tap_ok "modelgate-spawn: a key file the user cannot read is refused, named"
else
    tap_not_ok "modelgate-spawn: a key file the user cannot read is refused, named" "rc $rc: $out"
fi
# the responder itself, started as the user: the reason on standard error
out=$(runuser -u "$RUN_USER" -- "$IFCGI" -c "$CONF" -s "$MG_T/log/direct.sock" 2>&1 </dev/null)
rc=$?
chmod 640 "$ETC/upstream.key"
if [ "$rc" = 1 ] && [[ $out == *"modelgate-fcgi: "*"upstream.key_file"*"cannot read"*"Permission denied"* ]]; then
    tap_ok "modelgate-fcgi: an unreadable key file, said on standard error, exit 1"
else
    tap_not_ok "modelgate-fcgi: an unreadable key file, said on standard error, exit 1" "rc $rc: $out"
fi

# A database that does not answer: the responder starts (503s until it
# does) and says so on standard error even with a log file.
BADDB_CONF=$ETC/baddb.conf
CONNINFO_SAVED=$CONNINFO
CONNINFO="host=127.0.0.1 port=$(free_port) dbname=none user=none"
write_conf "$BADDB_CONF" "log_file = $(libconfig_quote "$MG_T/log/baddb.log");"
CONNINFO=$CONNINFO_SAVED
mkdir -p -m 0755 "$MG_T/log" && chown "$RUN_USER" "$MG_T/log"
runuser -u "$RUN_USER" -- "$IFCGI" -c "$BADDB_CONF" -s "$MG_T/log/baddb.sock" \
    </dev/null >/dev/null 2>"$MG_T/baddb.err" &
BAD_PID=$!
RESPONDER_PIDS+=("$BAD_PID")
for ((i = 0; i < 50; i++)); do
    grep -q 'database does not answer' "$MG_T/baddb.err" 2>/dev/null && break
    sleep 0.1
done
if grep -q 'warn .*the database does not answer (.*): requests get 503' "$MG_T/baddb.err" &&
    grep -q 'the database does not answer' "$MG_T/log/baddb.log" &&
    ! grep -q 'serving with' "$MG_T/baddb.err"; then
    tap_ok "modelgate-fcgi: a database that does not answer, said on standard error and in log_file"
else
    tap_not_ok "modelgate-fcgi: a database that does not answer, said on standard error and in log_file" \
        "$(cat "$MG_T/baddb.err" "$MG_T/log/baddb.log" 2>&1)"
fi
kill -TERM "$BAD_PID" 2>/dev/null
wait "$BAD_PID" 2>/dev/null

# ---------------------------------------------------------------------------
# The responders as the unprivileged user.

rm -f "$LOG"
if out=$(spawn 2>&1); then
    tap_ok "modelgate-spawn starts 2 responders as $RUN_USER"
else
    bail "modelgate-spawn starts the responders" "$out"
fi
mapfile -t SPAWNED <"$MG_T/run/modelgate-fcgi.pid"
RESPONDER_PIDS+=("${SPAWNED[@]}")
owners=
for pid in "${SPAWNED[@]}"; do
    owners+="$(ps -o user= -p "$pid" | tr -d ' ') "
done
check_eq "both responders run as $RUN_USER" "$owners" "$RUN_USER $RUN_USER "
check_eq "the socket: owner $RUN_USER, group $WEB_GROUP, mode 660" \
    "$(stat -c '%U %G %a %F' "$MG_T/run/gateway.sock")" "$RUN_USER $WEB_GROUP 660 socket"
check_eq "the log file: the user's, with the responders' start, no warning" \
    "$(stat -c %U "$LOG") $(grep -c 'serving with 4 threads' "$LOG") $(grep -c ' warn ' "$LOG")" "$RUN_USER 2 0"

# ---------------------------------------------------------------------------
# Debian's Apache configuration, copied, default site enabled, the
# installed file included inside its <VirtualHost>.

A=$MG_T/apache2
cp -a /etc/apache2 "$A" || bail "copy /etc/apache2"
rm -f "$A"/sites-enabled/* "$A"/conf-enabled/modelgate.conf
ln -s ../sites-available/000-default.conf "$A/sites-enabled/000-default.conf" ||
    bail "enable 000-default"
cp "/etc/apache2/sites-available/000-default.conf" "$A/sites-available/000-default.conf" ||
    bail "the stock default site"
install -m 644 "$SHARE/deploy/apache/modelgate.conf" "$A/conf-available/modelgate.conf" ||
    bail "install the Apache file"
out=$(APACHE_CONFDIR=$A a2enmod -q proxy proxy_fcgi alias 2>&1) || bail "a2enmod in the copy" "$out"
PORT=$(free_port) || bail "a free port"
printf 'Listen 127.0.0.1:%s\n' "$PORT" >"$A/ports.conf"
# the recipe: the Defines and the Include inside <VirtualHost>
node -e '
    const fs = require("fs");
    const [file, port, sock, errors] = process.argv.slice(1);
    let t = fs.readFileSync(file, "utf8");
    if (!t.includes("<VirtualHost *:80>") || !t.includes("</VirtualHost>")) process.exit(1);
    t = t.replace("<VirtualHost *:80>", `<VirtualHost *:${port}>`).replace("</VirtualHost>",
        `\tDefine MODELGATE_SOCKET ${sock}\n\tDefine MODELGATE_ERRORS ${errors}\n` +
        "\tInclude conf-available/modelgate.conf\n</VirtualHost>");
    fs.writeFileSync(file, t);' \
    "$A/sites-available/000-default.conf" "$PORT" "$MG_T/run/gateway.sock" "$SHARE/errors" ||
    bail "the Include inside <VirtualHost>"
mkdir -p "$MG_T/apache-run" "$MG_T/apache-log" || bail "mkdir apache dirs"
APACHE_ENV=(APACHE_CONFDIR="$A" APACHE_RUN_USER="$WEB_USER" APACHE_RUN_GROUP="$WEB_GROUP"
    APACHE_PID_FILE="$MG_T/apache-run/apache2.pid" APACHE_RUN_DIR="$MG_T/apache-run"
    APACHE_LOCK_DIR="$MG_T/apache-run" APACHE_LOG_DIR="$MG_T/apache-log" LANG=C)
APACHE2=$(find_tool apache2)
if out=$(env "${APACHE_ENV[@]}" "$APACHE2" -d "$A" -f "$A/apache2.conf" -t 2>&1); then
    tap_ok "apache2 -t: Debian's configuration with the default site and the Include"
else
    bail "apache2 -t" "$out"
fi
env "${APACHE_ENV[@]}" "$APACHE2" -d "$A" -f "$A/apache2.conf" -D FOREGROUND \
    </dev/null >"$MG_T/apache.out" 2>&1 &
SERVER_PIDS+=("$!")
BASE=http://127.0.0.1:$PORT
if mg_stack_wait_http "$BASE/healthz" 20 200 "$!"; then
    tap_ok "Apache answers /healthz through the default site"
else
    bail "Apache answers /healthz" "$(cat "$MG_T/apache.out" "$MG_T"/apache-log/error.log 2>&1 | tail -n 20)"
fi
http GET "$BASE/"
check_eq "the default site still serves its own pages (/ is not the gateway's)" \
    "$([ "$HTTP_STATUS" != 000 ] && ! grep -q '"error"' "$MG_T/last.body" && echo yes)" yes

http POST "$BASE/v1/chat/completions" -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' \
    --data '{"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "Say hello"}]}'
expect_http "chat through Apache: 200, the mock's answer" 200 \
    'j.choices[0].message.content.length > 0 && !!h["x-request-id"]'
RID=$(header x-request-id)
check_eq "its usage row, and its line in the spawn log file" \
    "$(sql "SELECT count(*) FROM usage_events WHERE request_id = :'r' AND status = 200" -v r="$RID") $(grep -c -- "$RID" "$LOG")" \
    "1 1"

http POST "$BASE/v1/chat/completions" -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' \
    -N --data '{"model": "openai/gpt-4o-mini", "stream": true, "messages": [{"role": "user", "content": "Say hello"}]}'
expect_http "a stream through Apache: text/event-stream, events, data: [DONE]" 200 \
    'h["content-type"].startsWith("text/event-stream") && (t.match(/^data: \{/mg) || []).length >= 2 && t.trimEnd().endsWith("data: [DONE]")'

http GET "$BASE/v1/models/openai%2Fgpt-4o-mini" -H "Authorization: Bearer $KEY"
expect_http "GET /v1/models/openai%2Fgpt-4o-mini through the default site: the model" 200 \
    'j.id === "openai/gpt-4o-mini" && j.object === "model"'

http GET "$BASE/metrics"
expect_http "GET /metrics through Apache: the scoreboard the user made beside the socket" 200 \
    '/^modelgate_responder_processes 2$/m.test(t)'

if out=$(node -e '
    const OpenAI = require("openai");
    const client = new OpenAI({ baseURL: process.argv[1], apiKey: process.argv[2], maxRetries: 0 });
    (async () => {
        const m = await client.models.retrieve("openai/gpt-4o-mini");
        if (m.id !== "openai/gpt-4o-mini") throw new Error("got " + JSON.stringify(m));
        const s = await client.chat.completions.create({ model: "openai/gpt-4o-mini", stream: true,
            messages: [{ role: "user", content: "Say hello" }] });
        let n = 0;
        for await (const c of s) n += c.choices.length;
        if (n < 1) throw new Error("no chunks");
        console.log("ok");
    })().catch((e) => { console.error(String(e)); process.exit(1); });' "$BASE/v1" "$KEY" 2>&1); then
    tap_ok "openai npm client: models.retrieve(\"openai/gpt-4o-mini\") and a stream through Apache"
else
    tap_not_ok "openai npm client: models.retrieve(\"openai/gpt-4o-mini\") and a stream through Apache" "$out"
fi

# The recipe the README used to give, for contrast: the same file enabled
# globally (a2enconf) instead.  The default site is a virtual host, which
# does not inherit AllowEncodedSlashes: Apache's own HTML 404 for %2F.
stop_servers
SERVER_PIDS=()
node -e '
    const fs = require("fs");
    const file = process.argv[1];
    const t = fs.readFileSync(file, "utf8").replace(/\tDefine MODELGATE_[A-Z]+ .*\n/g, "")
        .replace("\tInclude conf-available/modelgate.conf\n", "");
    fs.writeFileSync(file, t);' "$A/sites-available/000-default.conf" &&
    printf 'Define MODELGATE_SOCKET %s\nDefine MODELGATE_ERRORS %s\n' "$MG_T/run/gateway.sock" "$SHARE/errors" \
        >"$A/conf-available/modelgate-paths.conf" &&
    APACHE_CONFDIR=$A a2enconf -q modelgate-paths modelgate >/dev/null 2>&1 ||
    bail "a2enconf in the copy"
env "${APACHE_ENV[@]}" "$APACHE2" -d "$A" -f "$A/apache2.conf" -D FOREGROUND \
    </dev/null >"$MG_T/apache.out" 2>&1 &
SERVER_PIDS+=("$!")
mg_stack_wait_http "$BASE/healthz" 20 200 "$!" || bail "Apache (a2enconf) answers /healthz"
http GET "$BASE/v1/models/openai%2Fgpt-4o-mini" -H "Authorization: Bearer $KEY"
expect_http "for contrast, with a2enconf: the default site answers HTML 404 to %2F" 404 \
    'h["content-type"].startsWith("text/html")'

tap_done
