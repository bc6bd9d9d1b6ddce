#!/usr/bin/env bash
# `make run`: prepare var/, start the four simulated networks, then switchd (DESIGN §9).
#
# Every child stays in this process group (no setsid, nohup or daemonizing). SIGINT or
# SIGTERM stops both children and waits for them (each exits within 10 s). If switchd
# exits on its own, the simulators keep running until you interrupt: nothing is
# restarted and nothing torn down behind your back.
set -uo pipefail
CONFIG="${1:-conf/switch.toml}"
SIM_CONFIG="${SIM_CONFIG:-conf/simulators.toml}"
PY=.venv/bin
PORTS=(7100 7101 7102 7103 7104) # simulators' control API and the four networks

# Another `make run` (or switch-sim) already serving these ports would answer the
# probes below in place of ours, and this switchd would dial the other's networks.
for port in "${PORTS[@]}"; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        echo "run.sh: 127.0.0.1:$port is already in use: is another \`make run\` or" \
            "switch-sim running? Stop it first." >&2
        exit 1
    fi
done

"$PY/switchctl" init --config "$CONFIG" || exit $?

sim_pid=""
switchd_pid=""
stopping=0

stop() {
    stopping=1
    for pid in $switchd_pid $sim_pid; do
        kill -TERM "$pid" 2>/dev/null
    done
}
trap stop INT TERM

# Wait for a child; a trapped signal interrupts `wait`, so wait again while it lives.
wait_pid() {
    local pid=$1 rc
    while :; do
        wait "$pid"
        rc=$?
        if ((rc > 128)) && kill -0 "$pid" 2>/dev/null; then
            continue
        fi
        return "$rc"
    done
}

"$PY/switch-sim" all --config "$SIM_CONFIG" &
sim_pid=$!

deadline=$((SECONDS + 15))
for port in "${PORTS[@]}"; do
    until (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do
        if ((stopping)); then
            wait_pid "$sim_pid"
            exit 0
        fi
        if ! kill -0 "$sim_pid" 2>/dev/null; then
            wait_pid "$sim_pid"
            echo "run.sh: switch-sim exited with status $? before listening" >&2
            exit 1
        fi
        if ((SECONDS >= deadline)); then
            echo "run.sh: simulators not listening on 127.0.0.1:${port} after 15 s" >&2
            stop
            wait_pid "$sim_pid"
            exit 1
        fi
        sleep 0.2
    done
done

if ((!stopping)); then
    "$PY/switchd" --config "$CONFIG" &
    switchd_pid=$!
    wait_pid "$switchd_pid"
    switchd_rc=$?
    if ((!stopping)) && kill -0 "$sim_pid" 2>/dev/null; then
        echo "run.sh: switchd exited with status $switchd_rc;" \
            "the simulators keep running until you press Ctrl-C" >&2
    elif ((!stopping)); then
        echo "run.sh: switchd exited with status $switchd_rc" >&2
    fi
else
    switchd_rc=0
fi
wait_pid "$sim_pid"
exit "$switchd_rc"
