#!/usr/bin/env bash
# make demo: generate the scenario, evaluate every day through the real Airflow scheduler
# (a backfill), print the summary. Expects scripts/env.sh to be sourced (the Makefile does).
set -euo pipefail
START="${START:-2026-06-08}"; DAYS="${DAYS:-14}"; IMPRESSIONS_PER_DAY="${IMPRESSIONS_PER_DAY:-300000}"
END=$(python -c "import datetime as d; print(d.date.fromisoformat('$START') + d.timedelta(days=$DAYS - 1))")
t0=$(date +%s)

# Seven days of history before the evaluated days: v1 only, no experiment (the A/B test starts
# on $START); the readout uses them as the CUPED pre-period.
HISTORY_DAYS="${HISTORY_DAYS:-7}"
GEN_START=$(python -c "import datetime as d; print(d.date.fromisoformat('$START') - d.timedelta(days=$HISTORY_DAYS))")
. scripts/airflow_stack.sh
# The demo's days are in the past: schedule nothing after them (no run for today), from the
# first serialization of the DAGs on (airflow_init below), not only once the backfill starts.
schedule_until "$END"
# Airflow's database set-up needs no Spark: it runs beside the engine's start and the generator,
# and so does the components' start (the scheduler preloads the tasks' libraries, about 10 s of
# CPU, and the api-server builds its apps, while the generator leaves a core idle). Nothing runs
# meanwhile: the DAGs are paused until the backfill, which then finds the components up (as after
# `make airflow-up`) and stops them at its end. A backfill an interrupted demo left open is closed
# first (the backfill script does that only when no scheduler runs).
mkdir -p "$AIRFLOW_COMPONENT_LOGS"
( airflow_init \
  && for dag in offline_eval_daily offline_eval_ab_readout; do python scripts/backfills.py close-unfinished --dag-id $dag; done \
  && airflow_spawn api-server scheduler dag-processor ) > "$AIRFLOW_COMPONENT_LOGS/init.log" 2>&1 &
init_pid=$!
# Whatever stops the demo before the backfill takes the components over, stops them too.
trap 'airflow_stop > /dev/null' EXIT

echo "== 0/3 start the Spark engine (one Spark Connect server for every task; make engine-down stops it)"
offline-eval engine start

echo "== 1/3 generate $((DAYS + HISTORY_DAYS)) days of logs from $GEN_START ($IMPRESSIONS_PER_DAY impressions a day) into $OFFLINE_EVAL_HOME/warehouse"
echo "        $GEN_START..: history (v1 only); $START..$END: the v1/v2 A/B test, evaluated below"
offline-eval generate --start "$GEN_START" --days "$((DAYS + HISTORY_DAYS))" --experiment-start "$START" \
  --impressions-per-day "$IMPRESSIONS_PER_DAY" > /dev/null

HISTORY_END=$(python -c "import datetime as d; print(d.date.fromisoformat('$START') - d.timedelta(days=1))")
echo "        profiling the history days, so that the first days have their references: offline-eval baselines --end $HISTORY_END --windows 7"
offline-eval baselines --end "$HISTORY_END" --windows 7 > /dev/null
wait "$init_pid" || { cat "$AIRFLOW_COMPONENT_LOGS/init.log"; exit 1; }

echo "== 2/3 evaluate $START..$END: airflow backfill of offline_eval_daily (validate -> compute -> baselines -> drift -> publish -> notify)"
echo "        with one offline_eval_ab_readout run for $END once every day's compute is done (A/B readout of the"
echo "        experiment up to $END; the readout DAG stays paused until then, so the evaluated-day asset events"
echo "        start no readouts), and the weekly evaluation of every whole week once its days' drift is done"
# Every whole week [Mon, Sun] of the evaluated days (the default two: ending 06-14 and 06-21):
# each evaluated once the drift task of its days has finished (what the weekly evaluation reads:
# metrics_daily, alerts_daily, the daily profiles), beside the backfill's later days and the
# readout (BESIDE_DAILY of backfill.sh).
WEEKS=$(python -c "
import datetime as d
s, e = d.date.fromisoformat('$START'), d.date.fromisoformat('$END')
print(' '.join(f'{s + d.timedelta(k - 6)}:{s + d.timedelta(k)}' for k in range(6, (e - s).days + 1)
               if (s + d.timedelta(k)).weekday() == 6))")
WEEKLY='pids=""; for week in '"$WEEKS"'; do
  monday=${week%:*}; sunday=${week#*:}
  ( python scripts/backfills.py await-task --dag-id offline_eval_daily --task drift --start "$monday" --end "$sunday" \
    && echo "-> weekly evaluation of the week ending $sunday (offline-eval weekly, as the weekly DAG runs it on Mondays)" \
    && offline-eval weekly --end "$sunday" > /dev/null ) & pids="$pids $!"
done; rc=0; for pid in $pids; do wait "$pid" || rc=$?; done; exit $rc'
status=0
AIRFLOW_READY=1 AB_READOUT_DAY="$END" BESIDE_DAILY="$WEEKLY" bash scripts/backfill.sh "$START" "$END" completed \
  || status=$?

echo "== 3/3 summary"
offline-eval summary --start "$START" --end "$END"
AB_MD="$OFFLINE_EVAL_REPORTS/ab/exp_home_feed_v2/$END/readout.md"
if [ -f "$AB_MD" ]; then
  echo; sed -e '/^Methods:/d' "$AB_MD"
  echo
  python - "${AB_MD%.md}.json" "$OFFLINE_EVAL_HOME/generated/ground_truth.json" bench/ab_coverage.json <<'PY'
import json, pathlib, sys
from offline_eval.summary import truth_check_lines
readout, truth, coverage = (pathlib.Path(p) for p in sys.argv[1:4])
cov = json.loads(coverage.read_text()) if coverage.exists() else None
print("\n".join(truth_check_lines(json.loads(readout.read_text()), json.loads(truth.read_text()), cov)))
PY
fi
if [ -d "$OFFLINE_EVAL_OUTBOX" ]; then
  echo; echo "Alert deliveries (one file per message as it would be sent, $OFFLINE_EVAL_OUTBOX):"
  for day in "$OFFLINE_EVAL_OUTBOX"/*/; do
    echo "  $(basename "$day"): $(ls "$day" | sed -E 's/-[0-9a-f]{16}(-update-[0-9]+)?\.(eml|json)$//' | sort | uniq -c | awk '{printf "%s %s x%d, ", "", $2, $1}' | sed 's/, $//')"
  done
fi
elapsed=$(( $(date +%s) - t0 ))
if [ "$status" != 0 ]; then
  cat <<TXT

The evaluation did not finish (the backfill exited with $status after $((elapsed / 60)) min $((elapsed % 60)) s): see the
messages above and the components' logs in $AIRFLOW_COMPONENT_LOGS. make demo runs it all again;
make backfill START=$START END=$END evaluates the days again on the data generated here.
TXT
  exit "$status"
fi
cat <<TXT

Done in $((elapsed / 60)) min $((elapsed % 60)) s.
- Reports:   $OFFLINE_EVAL_REPORTS/<model>/<version>/<ds>/report.html (open in a browser), drift.json, alerts.json
- A/B:       $OFFLINE_EVAL_REPORTS/ab/exp_home_feed_v2/$END/readout.html (true lifts: docs/demo_scenario.md)
- Weekly:    $OFFLINE_EVAL_REPORTS/<model>/<version>/weekly/<sunday>/report.html (the 7 days side by side, incidents, drift)
- GX results: $OFFLINE_EVAL_REPORTS/validation/<ds>/validation.json
- Alerts:    $OFFLINE_EVAL_OUTBOX/<ds>/ (what each tier's recipients receive; routing in conf/alerting.yaml),
             table alerts_daily (one row per alert with its tier, context and incident)
- MLflow:    make mlflow-ui, then http://127.0.0.1:5000 (experiment home_feed_ctr, one run per version and day)
- Tables:    Hive database offline_eval in $OFFLINE_EVAL_HOME/warehouse (metrics_daily, drift_daily,
             profiles_daily, baselines, alerts_daily, concept_drift_daily, samples_daily)
- Engine:    the Spark engine stays up at $SPARK_REMOTE for make backfill / make summary; make engine-down stops it
TXT
exit $status
