#!/usr/bin/env bash
# A real multi-node Ray cluster on one machine: a head and four worker nodes, each its own
# `ray start` (own raylet, object store, node IP on the loopback range), advertising the same
# custom resources as the KubeRay groups in deploy/kuberay/raycluster.yaml:
#
#   head        127.0.0.2  num-cpus 1  (no role)      GCS, dashboard, Serve controller and proxy
#   verifier-a  127.0.0.3  num-cpus 2  {"verifier": 2}
#   verifier-b  127.0.0.4  num-cpus 2  {"verifier": 2}
#   rollout     127.0.0.5  num-cpus 2  {"rollout_gpu": 2, "learner": 1}   (stands in for GPU nodes)
#   rollout-b   127.0.0.6  num-cpus 2  {"rollout_gpu": 2}                 (a second, preemptible one)
#
# Not 127.0.0.1: Ray replaces that address with the machine's own network address, and all
# traffic here must stay on loopback.
#
# Usage: deploy/local/cluster.sh up|down|status [STATE_DIR]
#        deploy/local/cluster.sh kill NODE [STATE_DIR]    # SIGKILL one worker node: a machine lost
#        deploy/local/cluster.sh start NODE [STATE_DIR]   # start it again: a replacement machine
# STATE_DIR (default $ARBITER_LOCAL_CLUSTER or /tmp/arbiter-local-cluster) receives cluster.env
# (addresses, node pids), one log per node, and Ray's session files. Each node runs in its own
# session (setsid); `down` and `kill` signal exactly those sessions, never other Ray clusters on
# the machine (unlike `ray stop`, which kills every Ray process of the user).
set -eEuo pipefail

repo=$(cd "$(dirname "$0")/../.." && pwd)
py=${ARBITER_PYTHON:-$repo/.venv/bin/python}
ray_bin=$(dirname "$py")/ray
cmd=${1:-}
if [ "$cmd" = kill ] || [ "$cmd" = start ]; then
  node=${2:?usage: cluster.sh $cmd NODE [STATE_DIR]}
  state=${3:-${ARBITER_LOCAL_CLUSTER:-/tmp/arbiter-local-cluster}}
else
  state=${2:-${ARBITER_LOCAL_CLUSTER:-/tmp/arbiter-local-cluster}}
fi
env_file=$state/cluster.env

export RAY_AUTH_MODE=${RAY_AUTH_MODE:-disabled} RAY_USAGE_STATS_ENABLED=0
# Notice a lost node in ~3 s rather than Ray's default ~15 s, so failure tests stay short.
export RAY_health_check_period_ms=${RAY_health_check_period_ms:-1000}
export RAY_health_check_failure_threshold=${RAY_health_check_failure_threshold:-3}

NODES=(head verifier-a verifier-b rollout rollout-b)
declare -A IP=([head]=127.0.0.2 [verifier-a]=127.0.0.3 [verifier-b]=127.0.0.4 [rollout]=127.0.0.5
               [rollout-b]=127.0.0.6)
declare -A CPUS=([head]=1 [verifier-a]=2 [verifier-b]=2 [rollout]=2 [rollout-b]=2)
declare -A RESOURCES=([head]='{}' [verifier-a]='{"verifier": 2}' [verifier-b]='{"verifier": 2}'
                      [rollout]='{"rollout_gpu": 2, "learner": 1}' [rollout-b]='{"rollout_gpu": 2}')

PORTS=()
STARTED=()  # pids of the `ray start`s of this invocation
free_ports() {  # N distinct ports, free on every address a moment ago
  "$py" - "$1" <<'EOF'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket()
    s.bind(("0.0.0.0", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
EOF
}

session_pids() {  # every process in the session led by $1
  ps -eo pid=,sid= | awk -v sid="$1" '$2 == sid { print $1 }'
}

kill_session() {
  local pids
  pids=$(session_pids "$1")
  [ -n "$pids" ] || return 0
  # shellcheck disable=SC2086
  kill -KILL $pids 2>/dev/null || true
}

start_node() {  # NAME FIRST_PORT_INDEX EXTRA_ARGS...: uses PORTS[FIRST .. FIRST+5]
  local name=$1 i=$2; shift 2
  local ports=("${PORTS[@]:$i:6}")
  setsid "$ray_bin" start --block --disable-usage-stats \
    --node-ip-address="${IP[$name]}" --num-cpus="${CPUS[$name]}" --num-gpus=0 \
    --resources="${RESOURCES[$name]}" \
    --object-store-memory=200000000 \
    --node-manager-port="${ports[0]}" --object-manager-port="${ports[1]}" \
    --dashboard-agent-listen-port="${ports[2]}" --dashboard-agent-grpc-port="${ports[3]}" \
    --runtime-env-agent-port="${ports[4]}" --metrics-export-port="${ports[5]}" \
    "$@" >"$state/$name.log" 2>&1 < /dev/null &
  STARTED+=("$!")
  sed -i "/^NODE_${name//-/_}_/d" "$env_file"
  echo "NODE_${name//-/_}_PID=$!" >> "$env_file"
  echo "NODE_${name//-/_}_IP=${IP[$name]}" >> "$env_file"
}

wait_for_nodes() {  # COUNT DASHBOARD_URL: until COUNT nodes are alive, or a `ray start` has died
  "$py" - "$1" "$2" "$state" "${STARTED[@]}" <<'EOF'
import sys, time
from pathlib import Path
from ray.util.state import list_nodes
from ray.util.state.exception import RayStateApiException
want, url, state, pids = int(sys.argv[1]), sys.argv[2], Path(sys.argv[3]), [int(p) for p in sys.argv[4:]]
deadline = time.monotonic() + 120

def dead(pid):  # gone, or a zombie of this script's shell
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True

while True:
    for pid in pids:
        if dead(pid):
            logs = "\n".join(f"--- {p.name}\n" + p.read_text()[-2000:] for p in state.glob("*.log"))
            sys.exit(f"cluster.sh: a `ray start` exited during start-up\n{logs}")
    try:
        alive = [n for n in list_nodes(address=url, raise_on_missing_output=False) if n.state == "ALIVE"]
        if len(alive) >= want:
            break
    except (RayStateApiException, ConnectionError):  # the dashboard is still starting
        alive = []
    if time.monotonic() > deadline:
        sys.exit(f"cluster.sh: {len(alive)} of {want} nodes alive after 120 s")
    time.sleep(1)
EOF
}

up() {
  if [ -f "$env_file" ]; then
    echo "cluster.sh: $env_file exists; run '$0 down $state' first" >&2
    exit 1
  fi
  mkdir -p "$state"
  # A half-started cluster is stopped, not left running.
  trap 'echo "cluster.sh: start-up failed; stopping the nodes started so far" >&2; down' ERR
  local ray_tmp head=${IP[head]}
  # Ray's socket paths must stay under ~100 characters: a short temp root of our own.
  ray_tmp=$(mktemp -d /tmp/arbray-XXXXXX)
  # Every port of every node drawn at once, so no two draws can hand out the same port.
  read -r -a PORTS <<< "$(free_ports $((3 + 6 * ${#NODES[@]})))"
  local ports=("${PORTS[@]:0:3}")
  {
    echo "RAY_TMP=$ray_tmp"
    echo "GCS_ADDRESS=$head:${ports[0]}"
    echo "DASHBOARD_URL=http://$head:${ports[1]}"
    echo "NODES=\"${NODES[*]}\""
  } > "$env_file"
  start_node head 3 --head --port="${ports[0]}" --dashboard-host="$head" --dashboard-port="${ports[1]}" \
    --include-dashboard=true --ray-client-server-port="${ports[2]}" --temp-dir="$ray_tmp"
  wait_for_nodes 1 "http://$head:${ports[1]}"
  # One at a time: nodes of one machine share the session folder, and raylets starting together
  # race for the same socket and log names ("bind: Address already in use").
  local count=1
  for name in "${NODES[@]:1}"; do
    start_node "$name" $((3 + 6 * count)) --address="$head:${ports[0]}"
    count=$((count + 1))
    wait_for_nodes "$count" "http://$head:${ports[1]}"
  done
  cat "$env_file"
}

down() {
  [ -f "$env_file" ] || { echo "cluster.sh: no cluster at $state" >&2; return 0; }
  # shellcheck disable=SC1090
  source "$env_file"
  local name var
  for name in $NODES; do
    var="NODE_${name//-/_}_PID"
    [ -n "${!var:-}" ] && kill_session "${!var}"
  done
  rm -rf "$RAY_TMP" "$env_file"
}

need_cluster() {
  [ -f "$env_file" ] || { echo "cluster.sh: no cluster at $state (run '$0 up $state')" >&2; exit 1; }
  # shellcheck disable=SC1090
  source "$env_file"
}

kill_node() {
  need_cluster
  local var="NODE_${node//-/_}_PID"
  [ -n "${!var:-}" ] || { echo "cluster.sh: no node $node in $env_file" >&2; exit 1; }
  kill_session "${!var}"
}

restart_node() {
  need_cluster
  local var="NODE_${node//-/_}_PID"
  [ "$node" != head ] && [ -n "${!var:-}" ] || { echo "cluster.sh: no worker node $node in $env_file" >&2; exit 1; }
  [ -z "$(session_pids "${!var}")" ] || { echo "cluster.sh: $node is still running" >&2; exit 1; }
  read -r -a PORTS <<< "$(free_ports 6)"
  local alive
  alive=$("$py" -c "import sys; from ray.util.state import list_nodes; print(sum(n.state == 'ALIVE' for n in list_nodes(address=sys.argv[1])))" "$DASHBOARD_URL")
  start_node "$node" 0 --address="$GCS_ADDRESS"
  wait_for_nodes $((alive + 1)) "$DASHBOARD_URL"
}

status() {
  need_cluster
  "$py" - "$DASHBOARD_URL" <<'EOF'
import sys
from ray.util.state import list_nodes
for n in sorted(list_nodes(address=sys.argv[1]), key=lambda n: n.node_ip):
    print(f"{n.node_ip:<10} {n.state:<6} {n.resources_total}")
EOF
}

case "$cmd" in
  up) up ;;
  down) down ;;
  kill) kill_node ;;
  start) restart_node ;;
  status) status ;;
  *) echo "usage: $0 up|down|status [STATE_DIR] | kill|start NODE [STATE_DIR]" >&2; exit 2 ;;
esac
