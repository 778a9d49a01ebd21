#!/usr/bin/env bash
# Run the product with its demo on this machine: the README's "run" command.
#   1. installs what is missing (scripts/install.sh)
#   2. starts Dovecot, Redis, the SMTP sink and Roundcube (scripts/services.sh start all)
#   3. creates or upgrades the database (SQLite in instance/ unless DATABASE_URL is set)
#   4. seeds the demo: users, records, a mailbox with sample mail, and scans it once
#   5. runs the scan worker and the watcher in the background and the web app (gunicorn) in the foreground
# Ctrl-C stops the web app, the worker and the watcher; the services keep running
# (scripts/services.sh stop all stops them).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# shellcheck source=scripts/lib.sh
source "$ROOT/scripts/lib.sh"

HOST=127.0.0.1
PORT="${CM_WEB_PORT:-5000}"
RUN_DIR="$ROOT/.state/run"
LOGS="$ROOT/.state/logs"
WEB_PID_FILE="$RUN_DIR/web.pid"
WORKER_PID_FILE="$RUN_DIR/worker.pid"
WATCHER_PID_FILE="$RUN_DIR/watcher.pid"
FLASK=("$ROOT/.venv/bin/flask" --app wsgi)

scripts/install.sh
scripts/services.sh start all

mkdir -p "$RUN_DIR" "$LOGS"
# A web app or worker left behind by an earlier run that was killed hard.
for file in "$WEB_PID_FILE" "$WORKER_PID_FILE" "$WATCHER_PID_FILE"; do
    if pid_alive "$file"; then
        stop_pid "$file" "the $(basename "$file" .pid) of an earlier run"
    fi
    rm -f "$file"
done
if port_open "$PORT"; then
    die "port $PORT is already in use by another program; stop it or set CM_WEB_PORT."
fi

REDIS_URL="${REDIS_URL:-$(cat .state/redis.url)}"
export REDIS_URL
# Roundcube's plugin redeems tokens at this app's address: point it at the port we serve on, every time.
export CM_BASE_URL="${CM_BASE_URL:-http://127.0.0.1:$PORT}"
# And the app sends browsers to the Roundcube that services.sh started, on whatever port it has.
export ROUNDCUBE_URL="${ROUNDCUBE_URL:-http://127.0.0.1:${RC_PORT:-18090}/}"
"${FLASK[@]}" roundcube install >/dev/null || echo "run.sh: could not write the Roundcube plugin's settings" >&2

echo "== database: flask db upgrade"
"${FLASK[@]}" db upgrade >"$LOGS/db-upgrade.log" 2>&1 || die_log "$LOGS/db-upgrade.log" "flask db upgrade failed"

echo "== demo data: flask demo seed"
"${FLASK[@]}" demo seed

ACCOUNT_ID="$("${FLASK[@]}" demo account-id)"
[[ -n "$ACCOUNT_ID" ]] || die "flask demo seed left no demo mailbox to scan"
echo "== scanning the demo mailbox once: flask scanners run $ACCOUNT_ID"
if ! "${FLASK[@]}" scanners run "$ACCOUNT_ID" --json >"$LOGS/first-scan.json" 2>>"$LOGS/first-scan.log"; then
    echo "   (the scan failed; see $LOGS/first-scan.log — the worker retries on schedule)"
else
    echo "   $(cat "$LOGS/first-scan.json")"
fi

WORKER_PID=""
WATCHER_PID=""
WEB_PID=""
cleanup() {
    trap - EXIT INT TERM
    local pid
    for pid in "$WEB_PID" "$WORKER_PID" "$WATCHER_PID"; do
        [[ -n "$pid" ]] && kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "$WEB_PID" "$WORKER_PID" "$WATCHER_PID"; do
        [[ -n "$pid" ]] && wait "$pid" 2>/dev/null || true
    done
    rm -f "$WEB_PID_FILE" "$WORKER_PID_FILE" "$WATCHER_PID_FILE"
    echo "Stopped the web app, the worker and the watcher. The services still run; scripts/services.sh stop all stops them."
}
trap cleanup EXIT
trap 'exit 130' INT TERM

.venv/bin/python worker.py >>"$LOGS/worker.log" 2>&1 &
WORKER_PID=$!
echo "$WORKER_PID" >"$WORKER_PID_FILE"

# The watcher: IDLE/NOTIFY connections to the mailboxes; it queues a scan the moment mail arrives.
.venv/bin/python watcher.py >>"$LOGS/watcher.log" 2>&1 &
WATCHER_PID=$!
echo "$WATCHER_PID" >"$WATCHER_PID_FILE"

# In a session of its own: Ctrl-C reaches only this script, whose cleanup stops gunicorn with TERM. A
# terminal's SIGINT sent straight to gunicorn's threaded workers as well as their master's QUIT can
# deadlock a worker in its own signal handler, and Ctrl-C then hangs 30 s until the master kills it.
setsid .venv/bin/gunicorn --bind "$HOST:$PORT" --workers 2 --threads 4 --timeout 60 \
    --access-logfile "$LOGS/web-access.log" --error-logfile "$LOGS/web.log" wsgi:app &
WEB_PID=$!
echo "$WEB_PID" >"$WEB_PID_FILE"

wait_port "$PORT" 15 "$WEB_PID_FILE" || die_log "$LOGS/web.log" "the web app did not start"

cat <<EOF

  Corporate Mailboxes is running:   http://$HOST:$PORT/

  Log in as administrator:          admin / admin-demo-pw
  or as an ordinary user:           alice / alice-demo-pw
  Roundcube (via the top-bar button "Demo mailbox", or directly): $ROUNDCUBE_URL
  Demo mailbox:                     demo@corp.test / demopw  (IMAP 127.0.0.1:${CM_DOVECOT_PORT:-10143}, no TLS)
  Mail sent from Roundcube lands in .state/smtp/messages/ (SMTP sink on 127.0.0.1:${CM_SMTP_PORT:-10025})
  Logs:                             .state/logs/ (web.log, worker.log, watcher.log)

  Press Ctrl-C to stop the web app, the worker and the watcher.

EOF

# A short sleep in the foreground rather than `wait`: Ctrl-C ends the sleep, and bash then runs the INT trap
# (a SIGINT that arrives during `wait` for a child that does not die of it is passed over).
while kill -0 "$WEB_PID" 2>/dev/null; do sleep 1; done
