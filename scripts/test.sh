#!/usr/bin/env bash
# Runs every FerroMQ test suite: Rust (format, lints, unit and black-box tests), the Go
# interop suite with the official Go client, the Java interop suite with the official
# Java client, and the dashboard's browser tests. Installs what they need from the package
# registries (Go modules, Maven artefacts, npm packages, Debian's Chromium) on the way.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

step() { printf '\n==> [%s] %s\n' "$(date +%T)" "$*"; }

if ! command -v chromium >/dev/null; then
    step "installing Debian's Chromium for the dashboard tests"
    if [ "$(id -u)" = 0 ]; then apt-get update -q && apt-get install -y -q chromium; else sudo apt-get update -q && sudo apt-get install -y -q chromium; fi
fi

if ! command -v podman >/dev/null || ! command -v runc >/dev/null || ! command -v prometheus >/dev/null; then
    step "installing Debian's podman and runc (image and compose checks) and prometheus (dashboard queries)"
    if [ "$(id -u)" = 0 ]; then apt-get update -q && apt-get install -y -q podman runc prometheus; else sudo apt-get update -q && sudo apt-get install -y -q podman runc prometheus; fi
fi

step "cargo fmt --check"
cargo fmt --all -- --check
step "cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
step "cargo build"
cargo build --workspace --locked
# The image's and archives' static binary builds meanwhile, in a target directory of its
# own (no lock shared with the builds below) and niced: it takes the CPU the suites leave
# idle, and the packaging checks near the end use it.
static_target="$root/target/static"
static_log="$root/target/static-build.log"
(CARGO_TARGET_DIR="$static_target" nice -n 19 scripts/build-static.sh --profile static-check > "$static_log" 2>&1) &
static_pid=$!

step "cargo test"
cargo test --workspace --locked
step "power-loss simulation (the store's file layer undoes unsynced writes)"
cargo test -p ferromq-store --features power-loss --locked --test it power_loss -- --nocapture

export FERROMQ_BIN="$root/target/debug/ferromq"

# The Go suite's network-partition test runs Apache's Java client in its lab beside the Go
# client (io.ferromq.apachetools.PartitionClient): its classes and class path are built first.
step "Apache's Java client for the Go partition test (interop/apache-tools test classes and class path)"
(cd interop/apache-tools && mvn -B -ntp -q test-compile dependency:build-classpath \
    -Dmdep.includeScope=test -Dmdep.outputFile=target/partition-classpath.txt)
export FERROMQ_JAVA_PARTITION_CP="$root/interop/apache-tools/target/test-classes:$(cat interop/apache-tools/target/partition-classpath.txt)"

step "Go interop suite (official rocketmq-client-go; Apache's Java client too in TestControllerModePartition)"
(cd interop/go && go vet ./... && go test ./... -count=1 -timeout 20m)

step "Go client's TLS option (a newer, untagged rocketmq-client-go: v2.1.2 has none)"
(cd interop/go-tls && go vet ./... && go test ./... -count=1 -timeout 5m)

step "Benchmark harness smoke run (bench/compare, FerroMQ only, a few seconds)"
./bench/compare/run --smoke --out "$root/target/compare-smoke/RESULTS.md"
step "gRPC benchmark harness smoke run (bench/compare --grpc: Go v5 and Java 5 clients, FerroMQ only)"
./bench/compare/run --grpc --smoke
step "Observability cost harness smoke run (bench/compare --observability: metrics and life records on and off)"
./bench/compare/run --observability --smoke
step "Many-topics harness smoke run (bench/compare --scale: topic lists, registration, load over 20 topics with consumer groups)"
./bench/compare/run --scale --smoke
./bench/compare/run --scale --smoke --client rust
step "Scale scripts smoke run (bench/scale in miniature: many queues through SIGKILL and restart; the admin tool and dashboard with live groups)"
python3 bench/scale/queues.py --topics 100 --log-gib 0.02
python3 bench/scale/admin_pages.py --bin "$FERROMQ_BIN" --topics 300 --groups 60 --live

step "Java interop suite (official rocketmq-client)"
(cd interop/java && mvn -B -ntp test)

step "v5 gRPC suites side by side: the official Java 5, Go v5, Python and Node.js clients"
# The Python suite makes a venv: Debian splits ensurepip into python3-venv.
python3 -c 'import venv, ensurepip' 2>/dev/null || { if [ "$(id -u)" = 0 ]; then apt-get update -q && apt-get install -y -q python3-venv; else sudo apt-get update -q && sudo apt-get install -y -q python3-venv; fi; }
v5_logs=$(mktemp -d)
v5_pids=()
for suite in java go python node; do
    (interop/v5/$suite/run.sh > "$v5_logs/$suite.log" 2>&1) &
    v5_pids+=("$suite:$!")
done
v5_failed=""
for entry in "${v5_pids[@]}"; do
    wait "${entry#*:}" || v5_failed="$v5_failed ${entry%%:*}"
done
for suite in java go python node; do
    printf '\n--- interop/v5/%s ---\n' "$suite"
    cat "$v5_logs/$suite.log"
done
[ -z "$v5_failed" ] || { echo "v5 suites failed:$v5_failed" >&2; exit 1; }

step "Apache's own tools (mqadmin, the Java admin API, delivered properties; rocketmq-tools 5.5.0) against FerroMQ and, side by side, the same suite against Apache RocketMQ 5.5.0 itself: its assertions describe Apache"
against_apache_log=$(mktemp)
(./interop/apache-tools/against-apache.sh > "$against_apache_log" 2>&1) &
against_apache_pid=$!
tools_ok=true
(cd interop/apache-tools && mvn -B -ntp test) || tools_ok=false
against_apache_ok=true
wait "$against_apache_pid" || against_apache_ok=false
printf '\n--- the suite against Apache RocketMQ 5.5.0 ---\n'
cat "$against_apache_log"
$tools_ok || { echo "Apache's tools against FerroMQ failed" >&2; exit 1; }
$against_apache_ok || { echo "the suite against Apache RocketMQ failed" >&2; exit 1; }

step "Side by side: fuzzing (the committed corpora, then ${FUZZ_SECONDS:-10} s per target), the packaging checks, the dashboards in a browser"
wait "$static_pid" || { cat "$static_log"; echo "the static build failed" >&2; exit 1; }
packaging_log=$(mktemp)
(CARGO_TARGET_DIR="$static_target" scripts/packaging-check.sh --profile static-check \
    && printf '\n--> the Grafana dashboard'"'"'s queries through a real Prometheus (deploy/grafana/check.py)\n' \
    && python3 deploy/grafana/check.py) > "$packaging_log" 2>&1 &
packaging_pid=$!
browser_log=$(mktemp)
(cd dashboard-e2e && npm ci --no-audit --no-fund && npm test) > "$browser_log" 2>&1 &
browser_pid=$!
fuzz_ok=true
./scripts/fuzz.sh "${FUZZ_SECONDS:-10}" || fuzz_ok=false
packaging_ok=true
wait "$packaging_pid" || packaging_ok=false
browser_ok=true
wait "$browser_pid" || browser_ok=false
step "Packaging (release archive, container image, compose layouts, Go test-broker) and the Grafana dashboard's queries"
cat "$packaging_log"
step "Dashboards in a browser: FerroMQ's and Apache's rocketmq-dashboard (Debian's Chromium, playwright-core)"
cat "$browser_log"
$fuzz_ok || { echo "fuzzing failed" >&2; exit 1; }
$packaging_ok || { echo "the packaging checks failed" >&2; exit 1; }
$browser_ok || { echo "the browser tests failed" >&2; exit 1; }

printf '\nAll suites passed.\n'
