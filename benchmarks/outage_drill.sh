#!/usr/bin/env bash
# Usage: benchmarks/outage_drill.sh STEP [DELAY_S]   (docs/reliability.md)
# A whole `vidcustom run --preset ci` against a real `mlflow server` on loopback, the server SIGKILLed as soon as
# the console shows STEP finished (config|synthesize|validate|train|evaluate|register) plus DELAY_S seconds
# (validate 10: during training), restarted after the
# run; then `vidcustom mlflow sync` twice. Prints what the server holds, beside an uninterrupted run's.
set -u
STEP=${1:-validate}; DELAY=${2:-0}
cd "$(dirname "$0")/.."
D=$(mktemp -d); PY=.venv/bin/python
port() { $PY -c "import socket; s=socket.socket(); s.bind(('127.0.0.1',0)); print(s.getsockname()[1])"; }
serve() {  # $1 name, $2 port
  setsid .venv/bin/mlflow server --backend-store-uri sqlite:///$D/$1.db --artifacts-destination $D/$1-art \
    --host 127.0.0.1 --port $2 > $D/$1-server.log 2>&1 &
  echo $! > $D/$1.pid  # setsid: the server leads its own process group, workers included
  for _ in $(seq 120); do curl -sf http://127.0.0.1:$2/health >/dev/null && return; sleep 0.5; done
  echo "server $1 did not start"; exit 1
}
holds() {  # what server $1 holds
  $PY - "$1" <<'PY'
import sys, collections, mlflow
c = mlflow.MlflowClient(sys.argv[1], sys.argv[1])
exp = c.get_experiment_by_name("vidcustom")
runs = c.search_runs([exp.experiment_id], max_results=500)
points = sum(len(c.get_metric_history(r.info.run_id, k)) for r in runs for k in r.data.metrics)
arts = sum(len(c.list_artifacts(r.info.run_id)) for r in runs)
versions = {n: sorted((int(v.version), sorted(c.get_model_version(n, v.version).aliases))
                  for v in c.search_model_versions(f"name = '{n}'"))
            for n in ("vidcustom", "vidcustom-onnx")}
print(f"runs {len(runs)} {dict(collections.Counter(r.info.status for r in runs))}; metric points {points}; "
      f"top-level artifacts {arts}; versions {versions}")
PY
}
P1=$(port); serve ref $P1
t0=$(date +%s)
VIDCUSTOM_HOME=$D/h-ref MLFLOW_TRACKING_URI=http://127.0.0.1:$P1 .venv/bin/vidcustom run --preset ci > $D/ref.log 2>&1
echo "uninterrupted: exit $? in $(( $(date +%s) - t0 )) s"; echo -n "  server holds: "; holds http://127.0.0.1:$P1
P2=$(port); serve drill $P2
t0=$(date +%s)
VIDCUSTOM_HOME=$D/h-drill MLFLOW_TRACKING_URI=http://127.0.0.1:$P2 .venv/bin/vidcustom run --preset ci > $D/drill.log 2>&1 &
RUN=$!
until grep -q "✓ $STEP" $D/drill.log 2>/dev/null || ! kill -0 $RUN 2>/dev/null; do sleep 0.2; done
sleep $DELAY; kill -9 -- -$(cat $D/drill.pid); echo "server killed ${DELAY}s after '$STEP' at $(( $(date +%s) - t0 )) s"
wait $RUN; echo "drill run: exit $? in $(( $(date +%s) - t0 )) s"
serve drill $P2
for i in 1 2; do
  VIDCUSTOM_HOME=$D/h-drill MLFLOW_TRACKING_URI=http://127.0.0.1:$P2 .venv/bin/vidcustom mlflow sync --preset ci > $D/sync$i.json 2>$D/sync$i.err
  echo "sync $i: exit $?, uploaded runs $($PY -c "import json; print(len(json.load(open('$D/sync$i.json')).get('uploaded_runs', [])))" 2>/dev/null)"
done
echo -n "  server holds: "; holds http://127.0.0.1:$P2
kill -- -$(cat $D/ref.pid) -$(cat $D/drill.pid) 2>/dev/null; echo "logs: $D"
