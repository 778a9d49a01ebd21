#!/usr/bin/env bash
# Roundcube 1.6 (Debian's package) with the corporate_autologin plugin, served on loopback.
#   scripts/roundcube.sh setup|start|stop|status
#
# Nothing under /etc/roundcube or /var/lib/roundcube is changed: everything lives in a
# private folder (default .state/roundcube):
#   config/     config.inc.php (ours), defaults.inc.php + mimetypes.php (links to the
#               package's), corporate_autologin.inc.php (written by `flask roundcube install`)
#   www/        a front controller that points Roundcube at config/ and plugins/, plus links
#               to the package's static files
#   plugins/    corporate_autologin -> roundcube_bridge/plugin/corporate_autologin, and the
#               package plugins Roundcube needs
#   db/         Roundcube's own SQLite database;  logs/, temp/;  des_key (random, kept)
#   php.pid     `php -S` started in its own process group, stopped by that pid
# Idempotent: setup only adds what is missing; start reuses a running server.
#
# Settings (environment): RC_STATE_DIR, RC_PORT (18090), RC_IMAP_HOST (127.0.0.1:10143),
# RC_SMTP_HOST (127.0.0.1:10025), RC_SKIP_INSTALL=1 to leave the plugin's bridge config alone
# (tests write it themselves with `flask roundcube install --config-dir …`).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/lib.sh
source "$ROOT/scripts/lib.sh"
RC="${RC_STATE_DIR:-$ROOT/.state/roundcube}"
PORT="${RC_PORT:-18090}"
IMAP_HOST="${RC_IMAP_HOST:-127.0.0.1:10143}"
SMTP_HOST="${RC_SMTP_HOST:-127.0.0.1:10025}"
PKG_SHARE=/usr/share/roundcube
PKG_LIB=/var/lib/roundcube
PKG_ETC=/etc/roundcube
PLUGIN_SRC="$ROOT/roundcube_bridge/plugin/corporate_autologin"
PID_FILE="$RC/php.pid"

php_bin() { # the PHP command-line binary (empty when PHP is not installed)
    if command -v php || command -v php8.2; then return 0; fi
    local found=(/usr/bin/php[0-9]*)
    if [[ -x "${found[0]}" ]]; then printf '%s\n' "${found[0]}"; fi
}

check_packages() {
    [[ -f "$PKG_SHARE/index.php" && -d "$PKG_LIB/public_html" ]] || \
        die "Roundcube is not installed. Run scripts/install.sh (apt-get install roundcube-core roundcube-sqlite3 php8.2-cgi)."
    [[ -n "$(php_bin)" ]] || die "PHP is not installed. Run scripts/install.sh (apt-get install php8.2-cgi)."
    local modules
    modules="$("$(php_bin)" -m 2>/dev/null || true)"
    # (grep on a variable, not a pipe: with pipefail, grep -q closing early fails the pipe)
    grep -qi '^pdo_sqlite$' <<<"$modules" || \
        die "PHP has no SQLite driver. Run scripts/install.sh (apt-get install roundcube-sqlite3)."
}

link() { # target name: make name a symlink to target (replacing a stale link)
    if [[ -L "$2" && "$(readlink "$2")" == "$1" ]]; then return 0; fi
    rm -f "$2"
    ln -s "$1" "$2"
}

php_quote() { # a PHP single-quoted string literal
    local s=${1//\\/\\\\}
    printf "'%s'" "${s//\'/\\\'}"
}

write_config() {
    local des_key db
    if [[ ! -s "$RC/des_key" ]]; then
        # 24 characters: Roundcube encrypts the session's copy of the mailbox secret with it.
        (umask 077; head -c 64 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 24 >"$RC/des_key")
    fi
    des_key="$(cat "$RC/des_key")"
    db="$RC/db/roundcube.sqlite"
    local tmp="$RC/config/config.inc.php.tmp"
    (umask 077; cat >"$tmp" <<PHP
<?php
// Written by scripts/roundcube.sh; edits are overwritten by the next setup.
\$config = [];
\$config['db_dsnw'] = $(php_quote "sqlite:///$db?mode=0640");
// Default server for Roundcube's own login form. Autologin sessions use the
// IMAP/SMTP servers of the opened mailbox instead (set per login by the plugin).
\$config['imap_host'] = $(php_quote "$IMAP_HOST");
\$config['smtp_host'] = $(php_quote "$SMTP_HOST");
\$config['smtp_user'] = '%u';
\$config['smtp_pass'] = '%p';
\$config['des_key'] = $(php_quote "$des_key");
\$config['log_driver'] = 'file';
\$config['log_dir'] = $(php_quote "$RC/logs/");
\$config['temp_dir'] = $(php_quote "$RC/temp/");
\$config['plugins'] = ['corporate_autologin'];
\$config['skin'] = 'elastic';
\$config['product_name'] = 'Corporate Mailboxes – Webmail';
\$config['enable_installer'] = false;
\$config['support_url'] = '';
\$config['auto_create_user'] = true;
\$config['session_lifetime'] = 60;
PHP
    )
    mv -f "$tmp" "$RC/config/config.inc.php"
}

write_front_controller() {
    cat >"$RC/www/index.php.tmp" <<PHP
<?php
// Private front controller: Debian's Roundcube code with our config and plugins folders.
define('INSTALL_PATH', '$PKG_LIB/');
define('RCMAIL_CONFIG_DIR', $(php_quote "$RC/config"));
define('RCUBE_PLUGINS_DIR', $(php_quote "$RC/plugins/"));
include INSTALL_PATH . 'index.php';
PHP
    mv -f "$RC/www/index.php.tmp" "$RC/www/index.php"
}

setup() {
    check_packages
    mkdir -p "$RC"/{config,www,plugins,db,logs,temp}
    chmod 700 "$RC/config" "$RC/db"
    write_config
    write_front_controller
    link "$PKG_ETC/defaults.inc.php" "$RC/config/defaults.inc.php"
    link "$PKG_ETC/mimetypes.php" "$RC/config/mimetypes.php"
    link "$PKG_LIB/public_html/program" "$RC/www/program"
    link "$PKG_LIB/public_html/skins" "$RC/www/skins"
    link "$RC/plugins" "$RC/www/plugins"
    link "$PLUGIN_SRC" "$RC/plugins/corporate_autologin"
    local p
    for p in jqueryui filesystem_attachments; do
        link "$PKG_SHARE/plugins/$p" "$RC/plugins/$p"
    done
    if [[ ! -s "$RC/db/roundcube.sqlite" ]]; then
        # shellcheck disable=SC2016  # PHP code: its $db and $argv are PHP's, not the shell's
        "$(php_bin)" -r '
            $db = new PDO("sqlite:" . $argv[1]);
            $db->setAttribute(PDO::ATTR_ERRMODE, PDO::ERRMODE_EXCEPTION);
            $db->exec(file_get_contents($argv[2]));' \
            "$RC/db/roundcube.sqlite" "$PKG_SHARE/SQL/sqlite.initial.sql" \
            || { rm -f "$RC/db/roundcube.sqlite"; die "could not create Roundcube's SQLite database"; }
        chmod 600 "$RC/db/roundcube.sqlite"
        say "roundcube: database created from $PKG_SHARE/SQL/sqlite.initial.sql"
    fi
    if [[ "${RC_SKIP_INSTALL:-}" != 1 ]]; then
        local flask="$ROOT/.venv/bin/flask"
        [[ -x "$flask" ]] || flask="flask"
        (cd "$ROOT" && "$flask" --app wsgi roundcube install --config-dir "$RC/config") \
            || die "flask --app wsgi roundcube install failed"
    fi
    say "roundcube: set up in $RC"
}

start() {
    if pid_alive "$PID_FILE" && port_open "$PORT"; then
        say "roundcube: already running on http://127.0.0.1:$PORT/ (pid $(cat "$PID_FILE"))"
        return 0
    fi
    if port_open "$PORT"; then
        die "port $PORT is taken by another process; set RC_PORT or stop it"
    fi
    setup
    rm -f "$PID_FILE"
    # setsid: php -S gets its own process group, so stop can end it and any worker it forked.
    PHP_CLI_SERVER_WORKERS=1 setsid "$(php_bin)" -S "127.0.0.1:$PORT" -t "$RC/www" \
        >>"$RC/logs/php-server.log" 2>&1 </dev/null &
    echo $! >"$PID_FILE"
    wait_port "$PORT" 10 "$PID_FILE" || die_log "$RC/logs/php-server.log" "php -S did not start on port $PORT"
    say "roundcube: running on http://127.0.0.1:$PORT/ (pid $(cat "$PID_FILE"))"
}

stop() {
    stop_pid "$PID_FILE" roundcube group
}

status() {
    if pid_alive "$PID_FILE" && port_open "$PORT"; then
        say "roundcube: running on http://127.0.0.1:$PORT/ (pid $(cat "$PID_FILE"))"
    else
        say "roundcube: not running"
    fi
}

case "${1:-}" in
    setup) setup ;;
    start) start ;;
    stop) stop ;;
    status) status ;;
    restart) stop; start ;;
    *) echo "usage: scripts/roundcube.sh setup|start|stop|status|restart" >&2; exit 2 ;;
esac
