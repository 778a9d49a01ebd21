# shellcheck shell=bash
# Shell helpers shared by the scripts (services.sh, roundcube.sh, run.sh, test.sh, install.sh and
# .ci/run). Sourced, never run:   source "$ROOT/scripts/lib.sh"
# Every process is tracked through a pid file that holds its pid.

say() { # message -> one line on stdout
    printf '%s\n' "$*"
}

die() { # message -> one line on stderr, prefixed with the script's name, then exit 1
    printf '%s: %s\n' "$(basename "$0")" "$*" >&2
    exit 1
}

die_log() { # logfile message -> like die, followed by the last lines of the log that tell why
    local log=$1
    shift
    printf '%s: %s\n' "$(basename "$0")" "$*" >&2
    if [[ -s "$log" ]]; then
        printf -- '--- last lines of %s ---\n' "$log" >&2
        tail -n 30 "$log" >&2 || true
    fi
    exit 1
}

port_open() { # port -> 0 when something accepts TCP connections on 127.0.0.1:port
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

pid_alive() { # pidfile -> 0 when the process in it is alive
    [[ -s "$1" ]] && kill -0 "$(cat "$1")" 2>/dev/null
}

wait_port() { # port seconds [pidfile] -> 0 once 127.0.0.1:port accepts connections
    # 1 after the given seconds, or at once when the process in pidfile (if given) has died.
    local port=$1 tries=$(( $2 * 10 )) pidfile=${3:-}
    while (( tries-- > 0 )); do
        port_open "$port" && return 0
        if [[ -n "$pidfile" ]] && ! pid_alive "$pidfile"; then
            return 1
        fi
        sleep 0.1
    done
    return 1
}

stop_pid() { # pidfile name [group] -> TERM the process (or its process group), wait up to 10 s, then KILL
    # "group" is for processes started with setsid, which lead a process group of their own: the
    # whole group is stopped, so nothing they forked outlives them.
    local file=$1 name=$2 group=${3:-} pid tries=100
    if ! pid_alive "$file"; then
        rm -f "$file"
        say "$name: not running"
        return 0
    fi
    pid="$(cat "$file")"
    signal_pid TERM "$pid" "$group"
    while (( tries-- > 0 )) && kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then
        signal_pid KILL "$pid" "$group"
        sleep 0.2
    fi
    rm -f "$file"
    say "$name: stopped (pid $pid)"
}

signal_pid() { # signal pid [group] -> send the signal to the process, or to its process group
    # When the process does not lead a group (it was started without setsid), only it gets the signal.
    local signal=$1 pid=$2 group=${3:-}
    if [[ -n "$group" ]] && kill "-$signal" -- "-$pid" 2>/dev/null; then
        return 0
    fi
    kill "-$signal" "$pid" 2>/dev/null || true
}
