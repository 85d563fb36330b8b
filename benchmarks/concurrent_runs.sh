#!/usr/bin/env bash
# Usage: benchmarks/concurrent_runs.sh N   (docs/reliability.md)
# N whole pipelines at once in one fresh VIDCUSTOM_HOME (the SQLite default); then: exit codes, versions, duplicates.
N=${1:-2}; H=$(mktemp -d)  # a fresh VIDCUSTOM_HOME
cd "$(dirname "$0")/.."
start=$(date +%s)
for i in $(seq 1 $N); do
  VIDCUSTOM_HOME=$H .venv/bin/vidcustom run --preset ci > $H/run$i.log 2>&1 &
done
fails=0; for j in $(jobs -p); do wait $j || fails=$((fails+1)); done
echo "N=$N wall $(( $(date +%s) - start ))s failed=$fails"
.venv/bin/python - <<PY
import mlflow, collections
c = mlflow.MlflowClient("sqlite:///$H/mlflow.db", "sqlite:///$H/mlflow.db")
for name in ("vidcustom", "vidcustom-onnx"):
    vs = c.search_model_versions(f"name = '{name}'")
    shas = collections.Counter(v.tags.get("checkpoint_sha256", "")[:12] + "/" + v.tags.get("format", "torch") for v in vs)
    print(name, "versions", sorted(int(v.version) for v in vs), "duplicates", [k for k, n in shas.items() if n > 1])
runs = c.search_runs([e.experiment_id for e in c.search_experiments()], max_results=500)
print("runs", len(runs), "by status", collections.Counter(r.info.status for r in runs))
PY
for i in $(seq 1 $N); do grep -m1 -E "Gate:|error" $H/run$i.log; done
