#!/usr/bin/env bash
# Install what the product and its tests need, once; running it again does nothing.
#   scripts/install.sh         # what the product needs (scripts/run.sh)
#   scripts/install.sh --dev   # that, plus the test and development tools (scripts/test.sh)
#   - Debian packages: Dovecot, Redis, Roundcube (SQLite, php-cgi, no Apache), Chromium, sqlite3,
#     and PostgreSQL for the PostgreSQL half of the test suite
#     (as root with apt; otherwise it prints the command to run and exits 1)
#   - .venv with requirements.txt, and with --dev requirements-dev.txt (which includes
#     requirements.txt); pip runs again only when a file it installed from has changed
# Quiet unless something fails; the full log is .state/logs/install.log.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/lib.sh
source "$ROOT/scripts/lib.sh"
LOG_DIR="$ROOT/.state/logs"
LOG="$LOG_DIR/install.log"
VENV="$ROOT/.venv"
PYTHON="${PYTHON:-python3}"

case "${1:-}" in
    "") DEV=0 ;;
    --dev) DEV=1 ;;
    *) echo "usage: scripts/install.sh [--dev]" >&2; exit 2 ;;
esac

mkdir -p "$LOG_DIR" 2>/dev/null || true
if ! { : >"$LOG"; } 2>/dev/null; then
    LOG="$(mktemp -t cm-install.XXXXXX.log)"
fi

fail() { die_log "$LOG" "$1"; }

quiet() { # run a command with its output in the log only
    printf '+ %s\n' "$*" >>"$LOG"
    "$@" >>"$LOG" 2>&1
}

# ------------------------------------------------------------------ system packages

PACKAGES=(dovecot-imapd redis-server roundcube-core roundcube-sqlite3 php8.2-cgi chromium sqlite3 postgresql)

installed() {
    if command -v dpkg-query >/dev/null; then
        dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"
        return
    fi
    # Not Debian: look for what each package provides.
    case "$1" in
        dovecot-imapd) command -v dovecot >/dev/null ;;
        redis-server) command -v redis-server >/dev/null ;;
        roundcube-core|roundcube-sqlite3) [[ -d /usr/share/roundcube ]] ;;
        postgresql) command -v initdb >/dev/null || command -v pg_ctl >/dev/null ;;
        php8.2-cgi) command -v php-cgi >/dev/null ;;
        *) command -v "$1" >/dev/null ;;
    esac
}

missing_packages() {
    local pkg out=()
    for pkg in "${PACKAGES[@]}"; do
        installed "$pkg" && continue
        # Ubuntu and later Debian ship another PHP: any php-cgi will do for Roundcube.
        if [[ "$pkg" == php8.2-cgi ]] && command -v php-cgi >/dev/null; then continue; fi
        out+=("$pkg")
    done
    # venv needs ensurepip, which Debian ships separately.
    if ! "$PYTHON" -c 'import ensurepip, venv' >/dev/null 2>&1 && [[ ! -x "$VENV/bin/python" ]]; then
        out+=(python3-venv)
    fi
    if ! command -v "$PYTHON" >/dev/null; then
        out+=(python3)
    fi
    printf '%s\n' "${out[@]}"
}

install_packages() {
    local missing=()
    mapfile -t missing < <(missing_packages | sed '/^$/d')
    (( ${#missing[@]} == 0 )) && return 0

    if ! command -v dpkg-query >/dev/null || ! command -v apt-get >/dev/null || (( EUID != 0 )); then
        {
            echo "Missing system packages: ${missing[*]}"
            if command -v apt-get >/dev/null; then
                echo "Install them as root, then run this script again:"
                echo "  sudo apt-get update"
                echo "  sudo DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ${missing[*]}"
            else
                echo "This machine has no apt. Install the equivalents of: Dovecot (IMAP), Redis 6+, Roundcube 1.6"
                echo "with SQLite support and PHP 8 CGI, Chromium, sqlite3, and Python 3.11+ with venv."
            fi
        } >&2
        exit 1
    fi

    export DEBIAN_FRONTEND=noninteractive
    local apt=(apt-get -o DPkg::Lock::Timeout=300 -q)
    echo "Installing system packages: ${missing[*]} (log: $LOG)"
    quiet "${apt[@]}" update || fail "apt-get update failed"
    # Debian 12 has php8.2-cgi; elsewhere take the distribution's default php-cgi.
    local i
    for i in "${!missing[@]}"; do
        if [[ "${missing[$i]}" == php8.2-cgi ]] && ! apt-cache show php8.2-cgi >/dev/null 2>&1; then
            missing[i]=php-cgi
        fi
    done
    # PostgreSQL goes in after Roundcube: present during Roundcube's configuration, it makes
    # dbconfig-common try (and fail) to set Roundcube up on it, while apt still exits 0.
    local first=() later=()
    for i in "${missing[@]}"; do
        if [[ "$i" == postgresql ]]; then later+=("$i"); else first+=("$i"); fi
    done
    # php-cgi in the same command keeps apt from pulling Apache in for Roundcube: Roundcube's php
    # depends on "libapache2-mod-php | php-fpm | php-cgi", and --no-install-recommends alone
    # still takes the first.
    if (( ${#first[@]} )); then
        quiet "${apt[@]}" install -y --no-install-recommends "${first[@]}" \
            || fail "apt-get install ${first[*]} failed"
    fi
    if (( ${#later[@]} )); then
        quiet "${apt[@]}" install -y --no-install-recommends "${later[@]}" \
            || fail "apt-get install ${later[*]} failed"
    fi
    local still=()
    mapfile -t still < <(missing_packages | sed '/^$/d')
    (( ${#still[@]} == 0 )) || fail "still missing after apt-get install: ${still[*]}"
}

# ------------------------------------------------------------------ Python virtualenv

files_hash() { # file... -> sha256 of their contents, in that order
    cat "$@" | sha256sum | cut -d' ' -f1
}

pip_install() { # stamp requirements-file hash -> pip install -r the file unless the stamp holds the hash
    local stamp=$1 file=$2 want=$3
    if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then return 0; fi
    echo "Installing Python packages from $file (log: $LOG)"
    quiet "$VENV/bin/python" -m pip install --disable-pip-version-check -q -r "$ROOT/$file" \
        || fail "pip install -r $file failed"
    echo "$want" >"$stamp"
}

install_venv() {
    if [[ ! -x "$VENV/bin/python" ]]; then
        command -v "$PYTHON" >/dev/null || fail "$PYTHON not found"
        "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
            || fail "Python 3.11 or newer is needed ($PYTHON is $("$PYTHON" -V 2>&1))"
        echo "Creating .venv (log: $LOG)"
        quiet "$PYTHON" -m venv "$VENV" || fail "python -m venv failed"
        rm -f "$VENV/.requirements.sha256" "$VENV/.requirements-dev.sha256"
    fi
    # Each stamp holds the hash of the files last installed: requirements-dev.txt includes
    # requirements.txt, so its stamp covers both files and a change in either installs again.
    local runtime dev
    runtime="$(files_hash "$ROOT/requirements.txt")"
    if (( DEV )); then
        dev="$(files_hash "$ROOT/requirements.txt" "$ROOT/requirements-dev.txt")"
        pip_install "$VENV/.requirements-dev.sha256" requirements-dev.txt "$dev"
        # That installed every runtime package too.
        echo "$runtime" >"$VENV/.requirements.sha256"
    else
        pip_install "$VENV/.requirements.sha256" requirements.txt "$runtime"
    fi
}

install_packages
install_venv
