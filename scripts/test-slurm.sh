#!/usr/bin/env bash
# The Slurm executor end to end on this machine, as CI runs it: installs slurm-wlm and munge when
# missing, starts munged, slurmctld and slurmd as a one-node cluster (configuration in a temporary
# folder, everything stopped at the end by process id), runs the sample data through a pipeline with
# `--executor slurm --shards 4` and checks the merged features against a local run; then kills one
# shard's task mid-way and checks that the merge refuses, naming the shard, and that a rerun
# resubmits only that shard and ends identical.
# Needs: a release build (make build). Usage: scripts/test-slurm.sh
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
bin=$root/.build/release
passed=0
failed=0
check() { # check NAME COMMAND...
  if "${@:2}"; then passed=$((passed + 1)); echo "ok: $1"; else failed=$((failed + 1)); echo "FAILED: $1"; fi
}

missing=()
for package in slurm-wlm munge; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq "${missing[@]}" > /dev/null
fi

work=$(mktemp -d /tmp/signtransfer-slurm.XXXXXX)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2> /dev/null || true; done
  sleep 1
  for pid in "${pids[@]}"; do kill -9 "$pid" 2> /dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

# munge: its key comes with the package; start the daemon unless one runs already.
if ! pgrep -x munged > /dev/null; then
  [ -f /etc/munge/munge.key ] || { mkdir -p /etc/munge; dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 2> /dev/null; }
  mkdir -p /run/munge /var/log/munge /var/lib/munge
  chown -R munge:munge /etc/munge /run/munge /var/log/munge /var/lib/munge
  chmod 0700 /etc/munge; chmod 0400 /etc/munge/munge.key
  runuser -u munge -- /usr/sbin/munged
  for _ in $(seq 50); do [ -s /run/munge/munged.pid ] && break; sleep 0.1; done
  pids+=("$(cat /run/munge/munged.pid)")
fi
munge -n | unmunge > /dev/null

host=$(hostname -s)
mkdir -p "$work/state" "$work/spool"
cat > "$work/slurm.conf" <<CONF
ClusterName=signtransfer-ci
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
SlurmctldPort=16817
SlurmdPort=16818
AuthType=auth/munge
StateSaveLocation=$work/state
SlurmdSpoolDir=$work/spool
SlurmctldPidFile=$work/slurmctld.pid
SlurmdPidFile=$work/slurmd.pid
SlurmctldLogFile=$work/slurmctld.log
SlurmdLogFile=$work/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
ReturnToService=2
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
JobCompType=jobcomp/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
NodeName=$host CPUs=$(nproc) RealMemory=4000 State=UNKNOWN
PartitionName=local Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
export SLURM_CONF=$work/slurm.conf
slurmctld -f "$SLURM_CONF"
for _ in $(seq 50); do [ -s "$work/slurmctld.pid" ] && break; sleep 0.1; done
pids+=("$(cat "$work/slurmctld.pid")")
slurmd -f "$SLURM_CONF"
for _ in $(seq 50); do [ -s "$work/slurmd.pid" ] && break; sleep 0.1; done
pids+=("$(cat "$work/slurmd.pid")")
for _ in $(seq 100); do sinfo -h -o %t 2> /dev/null | grep -q idle && break; sleep 0.2; done
sinfo

# The sample data at 160x160 with a seeded random backbone (no network needed): slow enough to kill
# a task mid-way, quick enough for CI.
pipeline() { # pipeline NAME -> writes $work/NAME.yaml
  cat > "$work/$1.yaml" <<YAML
name: $1
artifacts: $1
stages:
  ingest: {train: $root/pipelines/data/sign-mnist-sample/train.csv, test: $root/pipelines/data/sign-mnist-sample/test.csv}
  preprocess: {size: 160}
  extract: {weights: "random:1", batch: 8}
  train: {epochs: 3}
YAML
}
pipeline local; pipeline sharded; pipeline killed; pipeline swept
"$bin/pipeline" run "$work/local.yaml" > "$work/local.log" 2>&1
"$bin/pipeline" run "$work/sharded.yaml" --executor slurm --shards 4 > "$work/sharded.log" 2>&1 || { cat "$work/sharded.log"; exit 1; }
check "slurm run submits the four shards" grep -q -- "--array=0,1,2,3" "$work/sharded.log"
check "merged features equal a local run's, byte for byte" cmp -s "$work/local/features.sqlite" "$work/sharded/features.sqlite"
check "the manifest records extract" grep -q '"executor" : "slurm, 4 shards"' "$work/sharded/manifest.json"
check "a second slurm run has nothing to do" sh -c "'$bin/pipeline' run '$work/sharded.yaml' --executor slurm --shards 4 | grep -q 'nothing to do'"

# Kill shard 1's task while it runs.
"$bin/pipeline" run "$work/killed.yaml" --until preprocess > /dev/null 2>&1
"$bin/pipeline" run "$work/killed.yaml" --executor slurm --shards 4 > "$work/killed.log" 2>&1 &
runner=$!
task=""
for _ in $(seq 600); do
  task=$(squeue -h -t R -o "%i" 2> /dev/null | grep -E "_1$" | head -1 || true)
  [ -n "$task" ] && break
  sleep 0.05
done
check "shard 1's task was seen running" test -n "$task"
[ -n "$task" ] && scancel --signal=KILL "$task" || true
status=0; wait "$runner" || status=$?
check "the run with a killed shard fails" test "$status" -ne 0
check "the merge refuses, naming shard 1" grep -q "shard 1 of 4 is missing" "$work/killed.log"
"$bin/pipeline" run "$work/killed.yaml" --executor slurm --shards 4 > "$work/rerun.log" 2>&1 || { cat "$work/rerun.log"; exit 1; }
check "the rerun resubmits only shard 1" grep -q -- "--array=1 " "$work/rerun.log"
check "the completed features equal a local run's" cmp -s "$work/local/features.sqlite" "$work/killed/features.sqlite"

# A sweep: each distinct extract (two sizes) is its own array job; the four heads share them.
"$bin/pipeline" sweep "$work/swept.yaml" --grid preprocess.size=64,96 --grid train.dropout=0.2,0.5 --jobs 2 --executor slurm --shards 2 \
  > "$work/sweep.log" 2>&1 || { cat "$work/sweep.log"; exit 1; }
check "a sweep submits one array job per distinct extract" test "$(grep -c -- "--array=0,1 " "$work/sweep.log")" -eq 2
check "a sweep trains four heads" test "$(grep -c "train: running" "$work/sweep.log")" -eq 4
"$bin/pipeline" run "$work/swept.yaml" --set preprocess.size=96 --until extract --force extract > "$work/local96.log" 2>&1
check "a variant's sharded features equal a local run's" cmp -s "$work/swept/features.sqlite" "$work/swept/variants/preprocess.size=96_train.dropout=0.2/features.sqlite"

echo "slurm: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
