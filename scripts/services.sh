#!/usr/bin/env bash
# Start, stop and inspect the private services the product and its tests use:
#   scripts/services.sh start|stop|status|restart [dovecot|redis|postgres|smtp|roundcube|all]
#
# Idempotent: "start" reuses what already runs, "stop" only stops what we started,
# each process by its own pid file. All state lives under .state/ (git-ignored).
#   dovecot    private IMAP server on 127.0.0.1:10143, users in .state/dovecot/users
#   redis      redis://127.0.0.1:6379/0 when it answers, else a private one on 16379;
#              the chosen URL is written to .state/redis.url
#   postgres   for the PostgreSQL half of the test suite: postgres@127.0.0.1:5432 when it
#              lets us in without a password, else a private cluster on 15432 (trust auth,
#              loopback only) when PostgreSQL is installed; the URL goes to .state/postgres.url.
#              Without PostgreSQL nothing fails: those tests are skipped with the reason.
#   smtp       SMTP sink on 127.0.0.1:10025 saving every message to .state/smtp/messages/
#   roundcube  delegated to scripts/roundcube.sh
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/lib.sh
source "$ROOT/scripts/lib.sh"
STATE="$ROOT/.state"
LOGS="$STATE/logs"

DOVECOT_PORT="${CM_DOVECOT_PORT:-10143}"
SMTP_PORT="${CM_SMTP_PORT:-10025}"
REDIS_SHARED_PORT="${CM_REDIS_SHARED_PORT:-6379}"
REDIS_PRIVATE_PORT="${CM_REDIS_PORT:-16379}"

DV="$STATE/dovecot"
DV_CONF="$DV/dovecot.conf"
DV_USERS="$DV/users"
DV_PID="$DV/run/master.pid"
MAIL_ROOT="$STATE/mail"
REDIS_DIR="$STATE/redis"
REDIS_PID="$REDIS_DIR/redis.pid"
REDIS_URL_FILE="$STATE/redis.url"
PG_PORT="${CM_PG_PORT:-15432}"
PG_SHARED_PORT="${CM_PG_SHARED_PORT:-5432}"
PG_DIR="$STATE/postgres"
PG_DATA="$PG_DIR/data"
PG_URL_FILE="$STATE/postgres.url"
SMTP_DIR="$STATE/smtp"
SMTP_PID="$SMTP_DIR/smtp.pid"

DEMO_USERS=("demo@corp.test:demopw" "sales@corp.test:salespw" "support@corp.test:supportpw")

redis_ping() { # port -> 0 when a Redis answers PING there
    local port=$1 reply=""
    port_open "$port" || return 1
    exec 4<>"/dev/tcp/127.0.0.1/$port" || return 1
    printf 'PING\r\n' >&4
    IFS= read -r -t 2 reply <&4 || true
    exec 4>&- 4<&-
    [[ "$reply" == +PONG* ]]
}

imap_greets() { # port -> 0 when an IMAP server greets there
    local port=$1 reply=""
    port_open "$port" || return 1
    exec 5<>"/dev/tcp/127.0.0.1/$port" || return 1
    IFS= read -r -t 2 reply <&5 || true
    exec 5>&- 5<&-
    [[ "$reply" == "* OK"* ]]
}

# --------------------------------------------------------------------------- dovecot

dovecot_users_file() {
    # Keep lines others added (tests' add_user); make sure the demo users exist.
    touch "$DV_USERS"
    local entry login password
    for entry in "${DEMO_USERS[@]}"; do
        login="${entry%%:*}"
        password="${entry#*:}"
        grep -q "^${login}:" "$DV_USERS" || printf '%s:{PLAIN}%s::::::\n' "$login" "$password" >>"$DV_USERS"
    done
    chmod 644 "$DV_USERS"
}

dovecot_config() {
    local user_fields extra="" login_chroot="" anvil_chroot=""
    user_fields="uid=nobody gid=$(id -gn nobody 2>/dev/null || echo nogroup) "
    if (( EUID != 0 )); then
        # Without root Dovecot cannot switch users: it runs as ourselves, which needs its internal
        # and login users set to us, no chroot for imap-login and anvil, and no uid/gid in the userdb.
        user_fields=""
        extra="default_internal_user = $(id -un)
default_login_user = $(id -un)
default_internal_group = $(id -gn)"
        login_chroot="  chroot ="
        anvil_chroot="  chroot ="
    fi
    cat >"$DV_CONF.tmp" <<EOF
# Written by scripts/services.sh on every start; edits here are lost.
instance_name = cm-dovecot
base_dir = $DV/run
state_dir = $DV/state
log_path = $DV/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
# Tests log in with wrong passwords on purpose: no artificial delay, no penalty.
auth_failure_delay = 0
mail_fsync = never
# NOTIFY (RFC 5465) for the watcher: the mailbox list index lets Dovecot tell one connection about
# every folder of a mailbox.
mailbox_list_index = yes
# One IMAP process per connection; the watcher holds one or more per mailbox and the watcher-cost
# benchmark opens 1,000 at once.
default_process_limit = 1200
default_client_limit = 4000
$extra
service imap {
  process_limit = 1200
}
service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = $DOVECOT_PORT
  }
  inet_listener imaps {
    port = 0
  }
$login_chroot
}
service anvil {
  unix_listener anvil-auth-penalty {
    mode = 0
  }
$anvil_chroot
}
protocol imap {
  # Roundcube, the scanner, the tests and load runs all connect from 127.0.0.1.
  mail_max_userip_connections = 500
}
# users.d/<login> first: Dovecot re-checks a passwd-file at most once a second, so a user
# the tests add gets a file of its own that is read fresh; then the shared users file.
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%u $DV/users.d/%u
}
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%u $DV_USERS
}
userdb {
  driver = passwd-file
  args = username_format=%u $DV/users.d/%u
  default_fields = ${user_fields}home=$MAIL_ROOT/%d/%n
}
userdb {
  driver = passwd-file
  args = username_format=%u $DV_USERS
  default_fields = ${user_fields}home=$MAIL_ROOT/%d/%n
}
mail_location = maildir:~/Maildir
# A folder with the special use \\Junk (RFC 6154) whose name does not say so: the scanner must
# recognize junk mail by the folder's LIST attributes too, not only by names such as "Junk".
namespace inbox {
  inbox = yes
  mailbox Quarantine {
    special_use = \\Junk
  }
}
EOF
    mv "$DV_CONF.tmp" "$DV_CONF"
}

# Every IMAP process that waits in IDLE or NOTIFY takes one inotify instance of its user (all of ours
# run as one uid). Past the kernel's limit (128 by default) Dovecot stops using inotify for the rest and
# looks at their mailboxes only every 30 s, so new mail reaches the watcher up to 30 s late. Raise the
# limit when we may (root), and say so when we may not.
INOTIFY_INSTANCES=8192
inotify_room() {
    local path=/proc/sys/fs/inotify/max_user_instances current
    current=$(cat "$path" 2>/dev/null || echo 0)
    (( current >= INOTIFY_INSTANCES )) && return 0
    if [[ -w "$path" ]] && echo "$INOTIFY_INSTANCES" >"$path" 2>/dev/null; then
        say "dovecot: raised fs.inotify.max_user_instances from $current to $INOTIFY_INSTANCES (one per waiting IMAP connection)"
    else
        say "dovecot: fs.inotify.max_user_instances is $current; past that many watched mailboxes new mail is seen up to 30 s late (as root: sysctl -w fs.inotify.max_user_instances=$INOTIFY_INSTANCES)"
    fi
}

dovecot_start() {
    command -v dovecot >/dev/null || die "dovecot is not installed (run scripts/install.sh, or apt-get install dovecot-imapd)"
    inotify_room
    if pid_alive "$DV_PID"; then
        dovecot_users_file
        say "dovecot: already running (pid $(cat "$DV_PID")) on 127.0.0.1:$DOVECOT_PORT"
        return 0
    fi
    if port_open "$DOVECOT_PORT"; then
        die "port $DOVECOT_PORT is taken by another process; stop it or set CM_DOVECOT_PORT"
    fi
    mkdir -p "$DV/run" "$DV/state" "$DV/users.d" "$MAIL_ROOT" "$LOGS"
    chmod 755 "$STATE" "$DV" "$DV/users.d"
    dovecot_users_file
    dovecot_config
    if (( EUID == 0 )); then
        chown nobody:"$(id -gn nobody 2>/dev/null || echo nogroup)" "$MAIL_ROOT"
    fi
    # The master forks and returns; a stale pid file would make it refuse to start.
    rm -f "$DV_PID"
    # Dovecot's master stays in the background holding what it was given as stdout and stderr: a
    # caller reading this script's output (a test harness) would wait for it to end. Its words at
    # start-up go to a file instead.
    dovecot -c "$DV_CONF" </dev/null >"$DV/dovecot.start.log" 2>&1 \
        || die_log "$DV/dovecot.start.log" "dovecot failed to start; see also $DV/dovecot.log"
    local tries=150
    # Wait for the greeting, not just the port: auth may not be ready for a moment.
    until imap_greets "$DOVECOT_PORT"; do
        (( tries-- > 0 )) || die_log "$DV/dovecot.log" "dovecot did not greet on 127.0.0.1:$DOVECOT_PORT"
        sleep 0.1
    done
    say "dovecot: started (pid $(cat "$DV_PID" 2>/dev/null || echo '?')) on 127.0.0.1:$DOVECOT_PORT"
}

dovecot_stop() {
    # The master takes a few seconds to exit; stop_pid waits for it so a quick
    # restart does not hit "Dovecot is already running".
    stop_pid "$DV_PID" dovecot
}

dovecot_status() {
    if pid_alive "$DV_PID" && imap_greets "$DOVECOT_PORT"; then
        say "dovecot: running (pid $(cat "$DV_PID")) imap://127.0.0.1:$DOVECOT_PORT users=$DV_USERS"
    elif pid_alive "$DV_PID"; then
        say "dovecot: process alive (pid $(cat "$DV_PID")) but 127.0.0.1:$DOVECOT_PORT does not greet"
        return 1
    else
        say "dovecot: stopped"
        return 1
    fi
}

# --------------------------------------------------------------------------- redis

redis_start() {
    mkdir -p "$REDIS_DIR" "$LOGS"
    if pid_alive "$REDIS_PID" && redis_ping "$REDIS_PRIVATE_PORT"; then
        echo "redis://127.0.0.1:$REDIS_PRIVATE_PORT/0" >"$REDIS_URL_FILE"
        say "redis: already running (private, pid $(cat "$REDIS_PID")) redis://127.0.0.1:$REDIS_PRIVATE_PORT/0"
        return 0
    fi
    if redis_ping "$REDIS_SHARED_PORT"; then
        echo "redis://127.0.0.1:$REDIS_SHARED_PORT/0" >"$REDIS_URL_FILE"
        say "redis: using the one already answering at redis://127.0.0.1:$REDIS_SHARED_PORT/0"
        return 0
    fi
    command -v redis-server >/dev/null || die "redis-server is not installed (run scripts/install.sh, or apt-get install redis-server)"
    port_open "$REDIS_PRIVATE_PORT" && die "port $REDIS_PRIVATE_PORT is taken by something that is not Redis"
    redis-server --port "$REDIS_PRIVATE_PORT" --bind 127.0.0.1 --save '' --appendonly no \
        --dir "$REDIS_DIR" --daemonize yes --pidfile "$REDIS_PID" --logfile "$REDIS_DIR/redis.log" \
        >/dev/null || die "redis-server failed to start; see $REDIS_DIR/redis.log"
    local tries=100
    until redis_ping "$REDIS_PRIVATE_PORT"; do
        (( tries-- > 0 )) || die "redis-server did not answer on $REDIS_PRIVATE_PORT; see $REDIS_DIR/redis.log"
        sleep 0.1
    done
    echo "redis://127.0.0.1:$REDIS_PRIVATE_PORT/0" >"$REDIS_URL_FILE"
    say "redis: started (private, pid $(cat "$REDIS_PID")) redis://127.0.0.1:$REDIS_PRIVATE_PORT/0"
}

redis_stop() {
    # Only the private instance is ours; a Redis on 6379 belongs to the machine.
    if [[ -s "$REDIS_PID" ]]; then
        stop_pid "$REDIS_PID" "redis (private)"
    else
        say "redis: no private instance to stop"
    fi
    rm -f "$REDIS_URL_FILE"
}

redis_status() {
    if pid_alive "$REDIS_PID" && redis_ping "$REDIS_PRIVATE_PORT"; then
        say "redis: running (private, pid $(cat "$REDIS_PID")) redis://127.0.0.1:$REDIS_PRIVATE_PORT/0"
    elif redis_ping "$REDIS_SHARED_PORT"; then
        say "redis: shared instance answers at redis://127.0.0.1:$REDIS_SHARED_PORT/0"
    else
        say "redis: stopped"
        return 1
    fi
}

# --------------------------------------------------------------------------- postgres

pg_bin() { # the newest installed server's bin folder (empty when none is installed)
    local bins=(/usr/lib/postgresql/*/bin)
    [[ -d "${bins[0]}" ]] || return 0
    printf '%s\n' "${bins[@]}" | sort -V | tail -n 1
}

pg_answers() { # port -> 0 when user postgres gets in on 127.0.0.1:port without a password
    local psql
    psql="$(command -v psql || true)"
    [[ -z "$psql" && -n "$(pg_bin)" ]] && psql="$(pg_bin)/psql"
    [[ -x "$psql" ]] || return 1
    port_open "$1" || return 1
    PGCONNECT_TIMEOUT=3 "$psql" -h 127.0.0.1 -p "$1" -U postgres -d postgres -w -tAc 'select 1' >/dev/null 2>&1
}

as_pg_owner() { # run a PostgreSQL server command as its owner (the server refuses to run as root)
    if (( EUID == 0 )); then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

pg_pid_file() { echo "$PG_DATA/postmaster.pid"; }

postgres_start() {
    local url_shared="postgresql+psycopg://postgres@127.0.0.1:$PG_SHARED_PORT/postgres"
    local url_private="postgresql+psycopg://postgres@127.0.0.1:$PG_PORT/postgres"
    if [[ -s "$(pg_pid_file)" ]] && kill -0 "$(head -n1 "$(pg_pid_file)")" 2>/dev/null && pg_answers "$PG_PORT"; then
        echo "$url_private" >"$PG_URL_FILE"
        say "postgres: already running (private, pid $(head -n1 "$(pg_pid_file)")) on 127.0.0.1:$PG_PORT"
        return 0
    fi
    if pg_answers "$PG_SHARED_PORT"; then
        echo "$url_shared" >"$PG_URL_FILE"
        say "postgres: using the one on 127.0.0.1:$PG_SHARED_PORT"
        return 0
    fi
    local bin
    bin="$(pg_bin)"
    if [[ -z "$bin" || ! -x "$bin/initdb" ]]; then
        rm -f "$PG_URL_FILE"
        say "postgres: not installed; the PostgreSQL cases of the tests will be skipped"
        return 0
    fi
    if (( EUID == 0 )) && ! id postgres >/dev/null 2>&1; then
        rm -f "$PG_URL_FILE"
        say "postgres: no 'postgres' system user to run the server as; PostgreSQL cases will be skipped"
        return 0
    fi
    port_open "$PG_PORT" && die "port $PG_PORT is taken by another process; stop it or set CM_PG_PORT"
    mkdir -p "$PG_DIR/run" "$LOGS"
    (( EUID == 0 )) && chown -R postgres: "$PG_DIR"
    if [[ ! -s "$PG_DATA/PG_VERSION" ]]; then
        as_pg_owner "$bin/initdb" -D "$PG_DATA" -U postgres --auth=trust -E UTF8 --no-sync \
            >"$PG_DIR/initdb.log" 2>&1 || die_log "$PG_DIR/initdb.log" "initdb failed"
    fi
    # A throwaway test cluster: durability off for speed, loopback only.
    as_pg_owner "$bin/pg_ctl" -D "$PG_DATA" -l "$PG_DIR/postgres.log" -w -t 60 \
        -o "-p $PG_PORT -k $PG_DIR/run -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
        start >/dev/null || die_log "$PG_DIR/postgres.log" "PostgreSQL did not start"
    echo "$url_private" >"$PG_URL_FILE"
    say "postgres: started (private, pid $(head -n1 "$(pg_pid_file)")) on 127.0.0.1:$PG_PORT"
}

postgres_stop() {
    local file pid tries=300
    file="$(pg_pid_file)"
    rm -f "$PG_URL_FILE"
    if [[ ! -s "$file" ]] || ! kill -0 "$(head -n1 "$file")" 2>/dev/null; then
        say "postgres: no private instance to stop"
        return 0
    fi
    pid="$(head -n1 "$file")"
    # SIGINT is PostgreSQL's "fast" shutdown: ends sessions, then exits cleanly.
    kill -INT "$pid"
    while (( tries-- > 0 )) && kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && die "PostgreSQL (pid $pid) did not stop within 30 s"
    say "postgres: stopped (private, pid $pid)"
}

postgres_status() {
    if [[ -s "$(pg_pid_file)" ]] && kill -0 "$(head -n1 "$(pg_pid_file)")" 2>/dev/null && pg_answers "$PG_PORT"; then
        say "postgres: running (private, pid $(head -n1 "$(pg_pid_file)")) postgresql://postgres@127.0.0.1:$PG_PORT/postgres"
    elif pg_answers "$PG_SHARED_PORT"; then
        say "postgres: shared instance answers at postgresql://postgres@127.0.0.1:$PG_SHARED_PORT/postgres"
    else
        say "postgres: stopped"
        return 1
    fi
}

# --------------------------------------------------------------------------- smtp sink

smtp_start() {
    mkdir -p "$SMTP_DIR/messages" "$LOGS"
    if pid_alive "$SMTP_PID"; then
        say "smtp: already running (pid $(cat "$SMTP_PID")) on 127.0.0.1:$SMTP_PORT"
        return 0
    fi
    local py="$ROOT/.venv/bin/python"
    [[ -x "$py" ]] || die "no virtualenv at .venv; run scripts/install.sh first"
    port_open "$SMTP_PORT" && die "port $SMTP_PORT is taken by another process; stop it or set CM_SMTP_PORT"
    # setsid: its own process group, so stop takes it down whole and it outlives this shell.
    setsid "$py" "$ROOT/scripts/smtp_sink.py" --host 127.0.0.1 --port "$SMTP_PORT" \
        --dir "$SMTP_DIR/messages" --users "$DV_USERS" \
        </dev/null >>"$SMTP_DIR/smtp.log" 2>&1 &
    echo $! >"$SMTP_PID"
    wait_port "$SMTP_PORT" 15 "$SMTP_PID" || die_log "$SMTP_DIR/smtp.log" "SMTP sink did not open 127.0.0.1:$SMTP_PORT"
    say "smtp: started (pid $(cat "$SMTP_PID")) on 127.0.0.1:$SMTP_PORT, messages in $SMTP_DIR/messages"
}

smtp_stop() { stop_pid "$SMTP_PID" smtp group; }

smtp_status() {
    if pid_alive "$SMTP_PID" && port_open "$SMTP_PORT"; then
        say "smtp: running (pid $(cat "$SMTP_PID")) smtp://127.0.0.1:$SMTP_PORT messages=$SMTP_DIR/messages"
    else
        say "smtp: stopped"
        return 1
    fi
}

# --------------------------------------------------------------------------- roundcube

roundcube() {
    bash "$ROOT/scripts/roundcube.sh" "$1"
}

# --------------------------------------------------------------------------- main

usage() {
    say "usage: scripts/services.sh start|stop|restart|status [dovecot|redis|postgres|smtp|roundcube|all]"
    exit 2
}

run() {
    local action=$1 service=$2
    case "$service" in
        dovecot|redis|postgres|smtp)
            case "$action" in
                start) "${service}_start" ;;
                stop) "${service}_stop" ;;
                status) "${service}_status" ;;
                restart) "${service}_stop"; "${service}_start" ;;
            esac ;;
        roundcube)
            if [[ "$action" == restart ]]; then roundcube stop; roundcube start; else roundcube "$action"; fi ;;
        *) usage ;;
    esac
}

main() {
    local action=${1:-status} service=${2:-all} rc=0
    case "$action" in start|stop|status|restart) ;; *) usage ;; esac
    mkdir -p "$STATE" "$LOGS"
    if [[ "$service" == all ]]; then
        local order=(dovecot redis postgres smtp roundcube)
        [[ "$action" == stop ]] && order=(roundcube smtp postgres redis dovecot)
        for s in "${order[@]}"; do
            run "$action" "$s" || rc=1
        done
        return $rc
    fi
    run "$action" "$service"
}

main "$@"
