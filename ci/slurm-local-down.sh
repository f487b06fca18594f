#!/usr/bin/env bash
# Stops the local cluster that ci/slurm-local-up.sh started with the same SLURM_LOCAL_DIR:
# cancels every job first (killing slurmd leaves running jobs' slurmstepd alive), then stops only
# the recorded pids, in the order slurmd, slurmctld, slurmdbd, mariadbd, munged, each after
# checking that /proc/PID/comm still names that program (a zombie counts as exited).
#
#   ci/slurm-local-down.sh [--purge]     --purge: also delete the state folder
#   ci/slurm-local-down.sh --only NAME   (internal) stop one daemon, no scancel
set -uo pipefail

D=${SLURM_LOCAL_DIR:-/var/tmp/perfgate-slurm}
purge=0
only=()
while [ $# -gt 0 ]; do
  case "$1" in
    --purge) purge=1 ;;
    --only) shift; only+=("${1:-}") ;;
    *) echo "usage: $0 [--purge]" >&2; exit 2 ;;
  esac
  shift
done
case "$D" in /*) ;; *) echo "slurm-local-down: SLURM_LOCAL_DIR must be absolute, got '$D'" >&2; exit 2 ;; esac
[ "$D" != / ] || { echo "slurm-local-down: SLURM_LOCAL_DIR must not be /" >&2; exit 2; }

# The pid of daemon $1 if it is live, not a zombie, and its comm is still $1.
live_pid() {
  local pid comm state
  pid=$(cat "$D/pids/$1" 2>/dev/null) || return 1
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  comm=$(cat "/proc/$pid/comm" 2>/dev/null) || return 1
  [ "$comm" = "$1" ] || return 1
  state=$(sed 's/^.*) //' "/proc/$pid/stat" 2>/dev/null | cut -d' ' -f1) || return 1
  [ "$state" != Z ] || return 1
  echo "$pid"
}

stop() {
  local name=$1 pid i
  if pid=$(live_pid "$name"); then
    kill -TERM "$pid" 2>/dev/null
    for ((i = 0; i < 150; i++)); do
      live_pid "$name" >/dev/null || break
      sleep 0.1
    done
    if live_pid "$name" >/dev/null; then
      echo "slurm-local-down: $name ($pid) ignored SIGTERM for 15 s; SIGKILL"
      kill -KILL "$pid" 2>/dev/null
    fi
  fi
  rm -f "$D/pids/$name"
}

if [ ${#only[@]} -gt 0 ]; then
  for name in "${only[@]}"; do stop "$name"; done
  exit 0
fi

# Cancel every job while slurmctld still runs, and wait (up to 20 s) until none is left running.
if live_pid slurmctld >/dev/null && command -v squeue >/dev/null; then
  jobs=$(squeue -h -o %A 2>/dev/null | sort -u | tr '\n' ' ')
  if [ -n "${jobs// /}" ]; then
    echo "slurm-local-down: cancelling jobs $jobs"
    # shellcheck disable=SC2086
    scancel $jobs 2>/dev/null
    for ((i = 0; i < 200; i++)); do
      [ -z "$(squeue -h -t running,completing,pending -o %A 2>/dev/null)" ] && break
      sleep 0.1
    done
  fi
fi

for name in slurmd slurmctld slurmdbd mariadbd munged; do stop "$name"; done

if [ "$purge" = 1 ] && [ -d "$D" ]; then
  rm -rf -- "$D"
fi
echo "slurm-local-down: down (state $D$([ "$purge" = 1 ] && echo ", purged"))"
