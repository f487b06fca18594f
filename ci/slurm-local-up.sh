#!/usr/bin/env bash
# A real single-node SLURM cluster on this machine (Debian 12, root, no systemd): munged, optional
# slurmdbd + MariaDB (for sacct), slurmctld and slurmd, with fake GPUs (gres backed by mknod'ed
# character devices). Idempotent: what is already up is left alone; a changed config restarts
# slurmctld and slurmd (their state is kept).
#
# Env:
#   SLURM_LOCAL_DIR    state folder (absolute; default /var/tmp/perfgate-slurm): spool, logs, pids,
#                      the MariaDB data and the fake GPU devices.
#   SLURM_LOCAL_ACCT   1 (default): slurmdbd + MariaDB, so sacct works; 0: no accounting.
#   SLURM_LOCAL_GPUS   fake GPUs on the node (default 2; 0 = none).
#   SLURM_LOCAL_FRESH  1: cancel every job, stop the daemons and wipe the state first.
# Each daemon's pid is recorded in $SLURM_LOCAL_DIR/pids/ for ci/slurm-local-down.sh.
#
#   ci/slurm-local-up.sh [--install-only | --no-install]
#     --install-only: install the packages, start nothing (.ci/run does this first)
#     --no-install:   never install; missing packages are an error naming them (the self tests
#                     use this: a test command must not change the system)
set -euo pipefail

install_only=0
no_install=0
case "${1:-}" in
  --install-only) install_only=1 ;;
  --no-install) no_install=1 ;;
  "") ;;
  *) echo "usage: $0 [--install-only | --no-install]" >&2; exit 2 ;;
esac

D=${SLURM_LOCAL_DIR:-/var/tmp/perfgate-slurm}
ACCT=${SLURM_LOCAL_ACCT:-1}
GPUS=${SLURM_LOCAL_GPUS:-2}
FRESH=${SLURM_LOCAL_FRESH:-0}
HERE=$(cd "$(dirname "$0")" && pwd)
CONF=/etc/slurm/slurm.conf
MARK="# perfgate slurm-local state="

die() { echo "slurm-local-up: $*" >&2; exit 1; }
log() { echo "slurm-local-up: $*"; }

case "$D" in /*) ;; *) die "SLURM_LOCAL_DIR must be absolute, got '$D'" ;; esac
[ "$D" != / ] || die "SLURM_LOCAL_DIR must not be /"
case "$ACCT" in 0|1) ;; *) die "SLURM_LOCAL_ACCT must be 0 or 1, got '$ACCT'" ;; esac
[[ "$GPUS" =~ ^[0-9]+$ ]] || die "SLURM_LOCAL_GPUS must be a number, got '$GPUS'"
[ "$(id -u)" -eq 0 ] || die "must run as root (it installs packages and starts daemons)"

# True when $D/pids/$1 names a live (not zombie) process whose comm is $2.
alive() {
  local pid comm state
  pid=$(cat "$D/pids/$1" 2>/dev/null) || return 1
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  comm=$(cat "/proc/$pid/comm" 2>/dev/null) || return 1
  [ "$comm" = "$2" ] || return 1
  state=$(sed 's/^.*) //' "/proc/$pid/stat" 2>/dev/null | cut -d' ' -f1) || return 1
  [ "$state" != Z ]
}

# Waits up to $1 seconds for the command in the remaining arguments to succeed.
wait_for() {
  local limit=$1; shift
  local end=$(( $(date +%s) + limit ))
  until "$@" >/dev/null 2>&1; do
    [ "$(date +%s)" -lt "$end" ] || return 1
    sleep 0.1
  done
}

# Records the pid in pidfile $2 as daemon $1's (after waiting for the daemon to write it).
record() {
  wait_for 10 test -s "$2" || die "$1 wrote no pid file $2 (see $D/log)"
  cat "$2" > "$D/pids/$1"
}

# --- packages -----------------------------------------------------------------------------------
pkgs=(slurmctld slurmd slurm-client munge)
[ "$ACCT" = 1 ] && pkgs+=(slurmdbd mariadb-server)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ] && [ "$no_install" = 1 ]; then
  die "packages missing: ${missing[*]}; install them first with 'sudo ci/slurm-local-up.sh --install-only' (.ci/run does)"
fi
if [ ${#missing[@]} -gt 0 ]; then
  log "installing ${missing[*]}"
  made_policy=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    # Package scripts must not try to start services (there is no init system to ask).
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d
    made_policy=1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null 2>&1 \
    || { apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null; } \
    || die "apt-get install ${missing[*]} failed"
  [ "$made_policy" = 1 ] && rm -f /usr/sbin/policy-rc.d
fi

[ "$install_only" = 1 ] && { log "packages installed: ${pkgs[*]}"; exit 0; }

if [ "$FRESH" = 1 ]; then
  SLURM_LOCAL_DIR=$D "$HERE/slurm-local-down.sh" --purge
fi

# One cluster per machine: /etc/slurm is shared. Refuse to take over one started elsewhere.
if [ -f "$CONF" ]; then
  other=$(sed -n "s|^$MARK||p" "$CONF" | head -n1)
  if [ -n "$other" ] && [ "$other" != "$D" ] && [ -d "$other/pids" ]; then
    for f in "$other"/pids/*; do
      [ -e "$f" ] || continue
      pid=$(cat "$f" 2>/dev/null || true)
      if [[ "$pid" =~ ^[0-9]+$ ]] && [ -d "/proc/$pid" ] \
         && [ "$(sed 's/^.*) //' "/proc/$pid/stat" | cut -d' ' -f1)" != Z ]; then
        die "a local cluster with state $other is up; stop it first: SLURM_LOCAL_DIR=$other $HERE/slurm-local-down.sh"
      fi
    done
  fi
fi

mkdir -p "$D"/{pids,log,run,spool/ctld,spool/d,fakegpu}
chmod 755 "$D"

# --- munge --------------------------------------------------------------------------------------
[ -s /etc/munge/munge.key ] || { mungekey --create >/dev/null && chown munge:munge /etc/munge/munge.key; }
if ! alive munged munged; then
  install -d -o munge -g munge -m 0755 /run/munge
  rm -f /run/munge/munged.pid
  runuser -u munge -- /usr/sbin/munged
  record munged /run/munge/munged.pid
fi
wait_for 10 bash -c 'munge -n | unmunge' || die "munged does not answer (munge -n | unmunge)"

# --- fake GPUs ----------------------------------------------------------------------------------
# A gpu gres without File= is dropped silently and the node drains; char devices are clean.
rm -f "$D"/fakegpu/nvidia*
for ((i = 0; i < GPUS; i++)); do mknod "$D/fakegpu/nvidia$i" c 195 "$i"; done

# --- slurm.conf, gres.conf ----------------------------------------------------------------------
node_line=$(slurmd -C | head -n1)
node=$(sed -n 's/^NodeName=\([^ ]*\).*/\1/p' <<<"$node_line")
[ -n "$node" ] || die "slurmd -C printed no NodeName line: $node_line"
gres=""
[ "$GPUS" -gt 0 ] && gres=" Gres=gpu:$GPUS"
if [ "$ACCT" = 1 ]; then
  acct="AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStorageTRES=gres/gpu
JobAcctGatherType=jobacct_gather/linux"
else
  acct="AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none"
fi
new_conf=$(cat <<EOF
$MARK$D
ClusterName=perfgate
SlurmctldHost=$node(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$D/spool/ctld
SlurmdSpoolDir=$D/spool/d
SlurmctldPidFile=$D/run/slurmctld.pid
SlurmdPidFile=$D/run/slurmd.pid
SlurmctldLogFile=$D/log/slurmctld.log
SlurmdLogFile=$D/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
KillWait=5
MinJobAge=600
MailProg=/bin/true
SchedulerParameters=batch_sched_delay=0,sched_interval=1,bf_interval=1
DependencyParameters=kill_invalid_depend
GresTypes=gpu
JobCompType=jobcomp/filetxt
JobCompLoc=$D/log/jobcomp.txt
$acct
$node_line NodeAddr=127.0.0.1$gres State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
)
if [ "$GPUS" -gt 0 ]; then
  new_gres="AutoDetect=off
NodeName=$node Name=gpu File=$D/fakegpu/nvidia[0-$((GPUS - 1))]"
else
  new_gres="AutoDetect=off"
fi
changed=0
if [ "$(cat "$CONF" 2>/dev/null || true)" != "$new_conf" ]; then
  printf '%s\n' "$new_conf" > "$CONF.tmp" && mv "$CONF.tmp" "$CONF"; changed=1
fi
if [ "$(cat /etc/slurm/gres.conf 2>/dev/null || true)" != "$new_gres" ]; then
  printf '%s\n' "$new_gres" > /etc/slurm/gres.conf.tmp && mv /etc/slurm/gres.conf.tmp /etc/slurm/gres.conf
  changed=1
fi
# --- accounting: MariaDB + slurmdbd -------------------------------------------------------------
if [ "$ACCT" = 1 ]; then
  if ! alive mariadbd mariadbd; then
    install -d -o mysql -g mysql -m 0755 /run/mysqld
    # mariadbd runs as mysql: its data, pid file and log live in mysql-owned folders.
    install -d -o mysql -g mysql -m 0750 "$D/mysql" "$D/mysql-run"
    if [ ! -d "$D/mysql/mysql" ]; then
      mariadb-install-db --user=mysql --datadir="$D/mysql" \
        --auth-root-authentication-method=socket >"$D/log/mariadb-install.log" 2>&1 \
        || die "mariadb-install-db failed (see $D/log/mariadb-install.log)"
    fi
    rm -f "$D/mysql-run/mariadbd.pid"
    setsid mariadbd --user=mysql --datadir="$D/mysql" --socket=/run/mysqld/mysqld.sock \
      --skip-networking --pid-file="$D/mysql-run/mariadbd.pid" \
      --log-error="$D/mysql-run/mariadbd.err" </dev/null >/dev/null 2>&1 &
    record mariadbd "$D/mysql-run/mariadbd.pid"
  fi
  wait_for 20 mariadb -e 'SELECT 1' || die "MariaDB does not answer (see $D/mysql-run/mariadbd.err)"
  dbd=/etc/slurm/slurmdbd.conf
  new_dbd=$(cat <<EOF
$MARK$D
AuthType=auth/munge
DbdHost=localhost
SlurmUser=root
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=root
StorageLoc=slurm_acct_db
PidFile=$D/run/slurmdbd.pid
LogFile=$D/log/slurmdbd.log
EOF
)
  if [ "$(cat "$dbd" 2>/dev/null || true)" != "$new_dbd" ]; then
    printf '%s\n' "$new_dbd" > "$dbd.tmp" && chmod 600 "$dbd.tmp" && mv "$dbd.tmp" "$dbd"
    if alive slurmdbd slurmdbd; then
      SLURM_LOCAL_DIR=$D "$HERE/slurm-local-down.sh" --only slurmdbd
    fi
  fi
  if ! alive slurmdbd slurmdbd; then
    rm -f "$D/run/slurmdbd.pid"
    slurmdbd
    record slurmdbd "$D/run/slurmdbd.pid"
  fi
  wait_for 20 sacctmgr -n show cluster || die "slurmdbd does not answer (see $D/log/slurmdbd.log)"
fi

if [ "$changed" = 1 ] && { alive slurmctld slurmctld || alive slurmd slurmd; }; then
  log "config changed: restarting slurmctld and slurmd"
  SLURM_LOCAL_DIR=$D "$HERE/slurm-local-down.sh" --only slurmd --only slurmctld
fi

# --- slurmctld, slurmd --------------------------------------------------------------------------
if ! alive slurmctld slurmctld; then
  rm -f "$D/run/slurmctld.pid"
  slurmctld
  record slurmctld "$D/run/slurmctld.pid"
fi
wait_for 20 bash -c 'scontrol ping | grep -q "is UP"' || die "slurmctld is not UP (see $D/log/slurmctld.log)"
if ! alive slurmd slurmd; then
  rm -f "$D/run/slurmd.pid"
  slurmd
  record slurmd "$D/run/slurmd.pid"
fi

# --- the node idle ------------------------------------------------------------------------------
end=$(( $(date +%s) + 30 ))
while :; do
  state=$(sinfo -h -N -n "$node" -o %T 2>/dev/null | head -n1)
  case "$state" in
    idle|mixed|allocated) break ;;
    *drain*|*down*|*inval*|*fail*) scontrol update nodename="$node" state=resume >/dev/null 2>&1 || true ;;
  esac
  [ "$(date +%s)" -lt "$end" ] || die "node $node is '$state', not idle (see $D/log/slurmd.log, $D/log/slurmctld.log)"
  sleep 0.2
done
log "up: node $node $state, $GPUS fake GPU(s), accounting $([ "$ACCT" = 1 ] && echo on || echo off), state $D"
