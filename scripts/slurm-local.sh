#!/usr/bin/env bash
# A real single-node SLURM cluster on this machine, for the tests (tests/test_slurm_real.py) and for
# trying profiles/slurm by hand:
#
#   scripts/slurm-local.sh start    # install if missing, write the configs, start what is not running
#   scripts/slurm-local.sh status   # each daemon's pid and the node's state; exit 0 when all are up
#   scripts/slurm-local.sh stop     # stop the daemons this script started (by their recorded pids)
#
# Debian/Ubuntu: installs `slurm-wlm munge mariadb-server slurmdbd` with apt-get on first use (through
# sudo when not root). With accounting (slurmdbd on MariaDB), as on a real cluster: `sacct` answers
# and the executor plugin's account check passes. No systemd is needed: every daemon is started by
# hand. `start` and `stop` are idempotent.
#
# The cluster: ClusterName=duomem, one node (this host, 127.0.0.1), one partition `debug` (default,
# no time limit), one account `duomem` (default account of root and of the sudo caller), so:
#   export DUOMEM_SLURM_ACCOUNT=duomem DUOMEM_SLURM_PARTITION=debug
# The node offers DUOMEM_SLURM_CPUS CPUs (default: 8, or the host's count when larger) and
# DUOMEM_SLURM_MEM_MB MB (default: 64000, or 90 % of the host's memory when larger): more than a
# small machine has, so that short and sleeping test jobs run side by side and the profile's requests,
# sized for the paper (SFT data: 16 GB), do not queue the smoke config's small jobs one by one.
# Nothing enforces them here (no cgroups). A job over its time limit is killed at the next check of
# slurmctld (every 30 s) with 5 s between SIGTERM and SIGKILL (KillWait).
set -euo pipefail

if [ "$(id -u)" != 0 ]; then  # root's work: through sudo (never a password prompt without a terminal)
  if [ -t 0 ]; then exec sudo -E "$0" "$@"; else exec sudo -n -E "$0" "$@"; fi
fi

CLUSTER=duomem
ACCOUNT=duomem
PARTITION=debug
STATE=/run/duomem-slurm          # the pids this script started; gone after a reboot, like the daemons
LOGS=/var/log/slurm
CONF=/etc/slurm
NODE=$(hostname -s)
DAEMONS="munged mariadbd slurmdbd slurmctld slurmd"   # start order; stop goes the other way

log() { echo "slurm-local: $*" >&2; }
die() { log "$*"; exit 1; }

# A recorded pid counts only while it is alive and still that program (pids are reused).
pid_of() {
  local f="$STATE/$1.pid" pid
  [ -s "$f" ] || return 1
  pid=$(cat "$f")
  [ -d "/proc/$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$1" ] && echo "$pid"
}

wait_for() {  # wait_for SECONDS DESCRIPTION COMMAND...
  local limit=$1 what=$2 i
  shift 2
  for ((i = 0; i < limit * 5; i++)); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.2
  done
  die "$what did not come up within $limit s (logs: $LOGS, $STATE)"
}

install_packages() {
  local missing=()
  command -v slurmctld >/dev/null || missing+=(slurm-wlm)
  command -v munged >/dev/null || missing+=(munge)
  command -v mariadbd >/dev/null || missing+=(mariadb-server)
  command -v slurmdbd >/dev/null || missing+=(slurmdbd)
  [ ${#missing[@]} = 0 ] && return 0
  command -v apt-get >/dev/null || die "install ${missing[*]} (no apt-get here)"
  log "installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    slurm-wlm slurm-client munge mariadb-server mariadb-client slurmdbd >/dev/null
}

# Replace FILE with stdin when different; prints "changed" when it did.
put() {
  local file=$1 owner=$2 mode=$3 tmp
  tmp=$(mktemp)
  cat >"$tmp"
  if [ -f "$file" ] && cmp -s "$tmp" "$file"; then rm -f "$tmp"; return 0; fi
  install -o "$owner" -g "$owner" -m "$mode" "$tmp" "$file"
  rm -f "$tmp"
  echo changed
}

write_configs() {
  local hw cpus mem pass
  # the node line as slurmd sees this host, with our CPU count and memory
  hw=$(slurmd -C | head -1)
  cpus=${DUOMEM_SLURM_CPUS:-$(($(nproc) > 8 ? $(nproc) : 8))}
  mem=$(($(awk '/MemTotal/ {print $2}' /proc/meminfo) * 9 / 10240))
  mem=${DUOMEM_SLURM_MEM_MB:-$((mem > 64000 ? mem : 64000))}
  [ -n "$hw" ] || die "slurmd -C printed nothing"
  mkdir -p "$CONF"
  # the database password: made once, kept in slurmdbd.conf (root and slurm only)
  pass=$(sed -n 's/^StoragePass=//p' "$CONF/slurmdbd.conf" 2>/dev/null || true)
  [ -n "$pass" ] || pass=$(head -c 18 /dev/urandom | base64 | tr -dc 'A-Za-z0-9')
  SLURM_CHANGED=$(put "$CONF/slurm.conf" root 644 <<EOF
# written by scripts/slurm-local.sh: a single-node test cluster
ClusterName=$CLUSTER
SlurmctldHost=$NODE(127.0.0.1)
AuthType=auth/munge
CryptoType=crypto/munge
SlurmUser=slurm
SlurmctldPidFile=/run/slurm/slurmctld.pid
SlurmdPidFile=/run/slurm/slurmd.pid
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldLogFile=$LOGS/slurmctld.log
SlurmdLogFile=$LOGS/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStorageEnforce=associations
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MailProg=/bin/true
# squeue keeps a finished job 5 minutes (the executor plugin's squeue status needs >= 3 x its
# first status interval); a down node returns to service when slurmd registers again
MinJobAge=300
ReturnToService=2
# a job over its time limit: SIGTERM at the next 30 s check, SIGKILL 5 s later
OverTimeLimit=0
KillWait=5
# the CPU count and memory below may exceed the host's
SlurmdParameters=config_overrides
$(echo "$hw" | sed -E "s/ CPUs=[0-9]+/ CPUs=$cpus/; s/ (Boards|SocketsPerBoard|CoresPerSocket|ThreadsPerCore)=[0-9]+//g; s/ RealMemory=[0-9]+/ RealMemory=$mem/; s/^NodeName=[^ ]+/NodeName=$NODE NodeAddr=127.0.0.1/") State=UNKNOWN
PartitionName=$PARTITION Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
EOF
  )
  put "$CONF/slurmdbd.conf" slurm 600 >/dev/null <<EOF
# written by scripts/slurm-local.sh
AuthType=auth/munge
DbdHost=localhost
SlurmUser=slurm
LogFile=$LOGS/slurmdbd.log
PidFile=/run/slurm/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=slurm
StoragePass=$pass
StorageLoc=slurm_acct_db
EOF
  DB_PASS=$pass
}

prepare_dirs() {
  mkdir -p "$STATE" /run/munge /run/mysqld /run/slurm /var/spool/slurmctld /var/spool/slurmd "$LOGS"
  chown munge:munge /run/munge
  chown mysql:mysql /run/mysqld
  chown slurm:slurm /run/slurm /var/spool/slurmctld "$LOGS"
  if [ ! -s /etc/munge/munge.key ]; then
    if command -v mungekey >/dev/null; then mungekey --create --force >/dev/null
    else head -c 1024 /dev/urandom >/etc/munge/munge.key; fi
    chown munge:munge /etc/munge/munge.key
    chmod 400 /etc/munge/munge.key
  fi
}

# record NAME PIDFILE: copy a daemon's own pid file into $STATE once it is written
record() {
  local name=$1 file=$2 i pid
  for ((i = 0; i < 100; i++)); do
    pid=$(cat "$file" 2>/dev/null || true)
    if [ -n "$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$name" ]; then
      echo "$pid" >"$STATE/$name.pid"
      return 0
    fi
    sleep 0.1
  done
  die "$name did not start (its log: $LOGS or $STATE/$name.out)"
}

sql() { mariadb --protocol=socket -uroot -e "$1"; }

start_munged() {
  pid_of munged >/dev/null && return 0
  munge -n </dev/null >/dev/null 2>&1 && { log "using the munged already running"; return 0; }
  su -s /bin/sh munge -c "/usr/sbin/munged --pid-file=/run/munge/munged.pid" 2>"$STATE/munged.out" \
    || die "munged failed: $(cat "$STATE/munged.out")"
  record munged /run/munge/munged.pid
}

start_mariadbd() {
  if ! pid_of mariadbd >/dev/null && ! sql "SELECT 1" >/dev/null 2>&1; then
    [ -d /var/lib/mysql/mysql ] || mariadb-install-db --user=mysql >/dev/null
    setsid mariadbd --user=mysql --socket=/run/mysqld/mysqld.sock --pid-file=/run/mysqld/mysqld.pid \
      </dev/null >"$STATE/mariadbd.out" 2>&1 &
    record mariadbd /run/mysqld/mysqld.pid
  fi
  wait_for 60 "mariadbd" sql "SELECT 1"
  sql "CREATE DATABASE IF NOT EXISTS slurm_acct_db;
       CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY '$DB_PASS';
       ALTER USER 'slurm'@'localhost' IDENTIFIED BY '$DB_PASS';
       GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';"
}

start_slurmdbd() {
  if ! pid_of slurmdbd >/dev/null; then
    slurmdbd 2>"$STATE/slurmdbd.out" || die "slurmdbd failed: $(cat "$STATE/slurmdbd.out")"
    record slurmdbd /run/slurm/slurmdbd.pid
  fi
  wait_for 60 "slurmdbd" sacctmgr -n list cluster
  # the cluster, the account and its users: once
  sacctmgr -n -P list cluster format=cluster | grep -qx "$CLUSTER" \
    || sacctmgr -i add cluster "$CLUSTER" >/dev/null
  sacctmgr -n -P list account format=account | grep -qx "$ACCOUNT" \
    || sacctmgr -i add account "$ACCOUNT" cluster="$CLUSTER" description=duomem-tests organization=duomem >/dev/null
  local user
  for user in root ${SUDO_USER:-}; do
    sacctmgr -n -P list assoc cluster="$CLUSTER" account="$ACCOUNT" user="$user" format=user | grep -qx "$user" \
      || sacctmgr -i add user "$user" account="$ACCOUNT" cluster="$CLUSTER" >/dev/null
    sacctmgr -n -P list user "$user" format=defaultaccount | grep -qx "$ACCOUNT" \
      || sacctmgr -i modify user where name="$user" set defaultaccount="$ACCOUNT" >/dev/null
  done
}

node_ready() { sinfo -h -N -n "$NODE" -o %T | grep -Eq '^(idle|mixed|allocated)'; }

start_slurm() {
  if [ -n "$SLURM_CHANGED" ]; then  # a new slurm.conf: restart both daemons with it
    stop_one slurmd
    stop_one slurmctld
  fi
  if ! pid_of slurmctld >/dev/null; then
    slurmctld 2>"$STATE/slurmctld.out" || die "slurmctld failed: $(cat "$STATE/slurmctld.out")"
    record slurmctld /run/slurm/slurmctld.pid
  fi
  wait_for 60 "slurmctld" sh -c "scontrol ping | grep -q UP"
  if ! pid_of slurmd >/dev/null; then
    slurmd 2>"$STATE/slurmd.out" || die "slurmd failed: $(cat "$STATE/slurmd.out")"
    record slurmd /run/slurm/slurmd.pid
  fi
  # a node left down or drained by an earlier run comes back
  if ! node_ready; then
    sleep 1
    node_ready || scontrol update nodename="$NODE" state=resume >/dev/null 2>&1 || true
  fi
  wait_for 60 "node $NODE (sinfo: $(sinfo -h -N -o %T 2>/dev/null))" node_ready
}

stop_one() {
  local name=$1 pid i
  pid=$(pid_of "$name") || { rm -f "$STATE/$name.pid"; return 0; }
  kill "$pid" 2>/dev/null || true
  for ((i = 0; i < 150; i++)); do
    [ -d "/proc/$pid" ] || break
    sleep 0.2
  done
  [ -d "/proc/$pid" ] && kill -9 "$pid" 2>/dev/null || true
  rm -f "$STATE/$name.pid"
  log "stopped $name ($pid)"
}

status() {
  local name pid ok=0
  for name in $DAEMONS; do
    if pid=$(pid_of "$name"); then echo "$name: running ($pid)"
    elif [ "$name" = munged ] && munge -n </dev/null >/dev/null 2>&1; then echo "munged: running (not ours)"
    elif [ "$name" = mariadbd ] && sql "SELECT 1" >/dev/null 2>&1; then echo "mariadbd: running (not ours)"
    else echo "$name: stopped"; ok=3; fi
  done
  if [ $ok = 0 ]; then
    sinfo -h -N -o "node %N: %T, %c CPUs, %m MB, partition %P" || ok=3
  fi
  return $ok
}

case "${1:-}" in
  start)
    install_packages
    prepare_dirs
    write_configs
    start_munged
    start_mariadbd
    start_slurmdbd
    start_slurm
    status
    ;;
  stop)
    for name in $(echo "$DAEMONS" | tr ' ' '\n' | tac); do stop_one "$name"; done
    ;;
  status)
    status
    ;;
  *)
    echo "usage: $0 start|stop|status" >&2
    exit 2
    ;;
esac
