#!/usr/bin/env bash
# Capture loss of `mqscope run` on loopback under the simulator's heaviest load (not in CI).
#
# A local Mosquitto (anonymous, $SYS every second); `mqscope run` capturing its port on `lo`
# with the $SYS input connected; `mqscope simulate` driving it. Then SIGTERM and the final
# stats file: frames captured, frames dropped between the capture and processing threads
# (channel full), kernel drops (libpcap's counters), MQTT packets decoded, stream gaps, and
# the CPU time of mqscope (by thread) over the run.
#
# Needs root (capture on lo), mosquitto, python3. Release build of mqscope.
# Knobs (environment): DEVICES (200), INTERVAL_MS (100), FLOOD_RATE (20000), DURATION (20),
# CONSUMERS (2), MQSCOPE (path of the binary; default target/release/mqscope, built if absent),
# CONFIG (an mqscope config file, e.g. to try other [capture] buffer sizes).
set -euo pipefail

cd "$(dirname "$0")/.."
DEVICES=${DEVICES:-200}
INTERVAL_MS=${INTERVAL_MS:-100}
FLOOD_RATE=${FLOOD_RATE:-20000}
DURATION=${DURATION:-20}
CONSUMERS=${CONSUMERS:-2}
MQSCOPE=${MQSCOPE:-target/release/mqscope}
if [ ! -x "$MQSCOPE" ]; then
    cargo build --release --bin mqscope
fi

dir=$(mktemp -d /tmp/mqscope-load.XXXXXX)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
}
trap cleanup EXIT

printf 'listener %s 127.0.0.1\nallow_anonymous true\nsys_interval 1\nmax_queued_messages 100000\n' "$port" >"$dir/mosquitto.conf"
mosquitto -c "$dir/mosquitto.conf" >"$dir/mosquitto.log" 2>&1 &
broker=$!
pids+=("$broker")
for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    sleep 0.05
done

extra=()
[ -n "${CONFIG:-}" ] && extra=(--config "$CONFIG")
"$MQSCOPE" run "${extra[@]}" --interface lo --ports "$port" --broker "mqtt://127.0.0.1:$port" \
    --listen 127.0.0.1:0 --stats-file "$dir/stats.json" 2>"$dir/mqscope.log" &
mq=$!
pids+=("$mq")
for _ in $(seq 100); do
    grep -q "broker input connected" "$dir/mqscope.log" && break
    sleep 0.1
done

clk=$(getconf CLK_TCK)
# utime+stime (ticks) of the process and of each named thread.
cpu_of() { awk '{print $14 + $15}' "/proc/$1/stat"; }
threads() {
    for t in /proc/"$mq"/task/*; do
        printf '%s %s\n' "$(cat "$t/comm")" "$(awk '{print $14 + $15}' "$t/stat")"
    done | sort
}
cpu0=$(cpu_of "$mq")
threads >"$dir/threads0"
b0=$(cpu_of "$broker")
t0=$(date +%s.%N)

"$MQSCOPE" simulate --broker "127.0.0.1:$port" --devices "$DEVICES" --interval-ms "$INTERVAL_MS" \
    --flood-rate "$FLOOD_RATE" --consumers "$CONSUMERS" --duration "$DURATION" 2>"$dir/simulate.log" &
sim=$!
pids+=("$sim")
sim_cpu=0
# Sample the simulator's CPU while it runs (it is gone once waited for).
while kill -0 "$sim" 2>/dev/null; do
    v=$(cpu_of "$sim" 2>/dev/null || true)
    [ -n "$v" ] && sim_cpu=$v
    sleep 0.5
done
wait "$sim" || true
sleep 2 # let processing catch up with the tail
t1=$(date +%s.%N)
cpu1=$(cpu_of "$mq")
threads >"$dir/threads1"
b1=$(cpu_of "$broker")
kill -TERM "$mq"
rc=0
wait "$mq" || rc=$?

echo "machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg) (shared with other work)"
echo "load: $DEVICES devices x 3 metrics every $INTERVAL_MS ms, flood $FLOOD_RATE msg/s, $CONSUMERS consumers, ${DURATION} s"
echo "simulate: $(tail -n1 "$dir/simulate.log")"
python3 - "$dir/stats.json" "$cpu0" "$cpu1" "$clk" "$t0" "$t1" "$b0" "$b1" "$sim_cpu" "$dir/threads0" "$dir/threads1" <<'EOF'
import json, sys
stats, cpu0, cpu1, clk, t0, t1, b0, b1, simcpu, th0, th1 = sys.argv[1:]
s = json.load(open(stats))
c = s["capture"]["counters"]
d = s["dissect"]
wall = float(t1) - float(t0)
clk = int(clk)
cpu = (int(cpu1) - int(cpu0)) / clk
print(f"frames captured (read from libpcap):   {c['frames']}")
print(f"frames dropped, capture->processing:   {c['frames_dropped']} ({c['batches_dropped']} batches)")
print(f"kernel drops (pcap ps_drop/ps_ifdrop): {c['pcap_dropped']} / {c['pcap_if_dropped']}   (pcap received {c['pcap_received']})")
print(f"frames processed:                      {d['frames']}")
print(f"MQTT packets decoded:                  {d['mqtt_packets']}")
print(f"stream gaps / packets lost in gaps:    {d['stream']['gaps']} / {d['stream']['packets_lost_in_gap']}")
print(f"segments cut by snaplen:               {s['tcp']['truncated_segments']}")
print(f"decode errors:                         {d['decode_errors']}")
pt = s["packets_by_type_and_direction"].get("PUBLISH", {})
print(f"PUBLISH client->broker / broker->client: {pt.get('c2s', 0)} / {pt.get('s2c', 0)}")
print(f"mqscope CPU: {cpu:.2f} s over {wall:.1f} s wall ({100 * cpu / wall:.0f}% of one core)")
t0 = dict(l.rsplit(" ", 1) for l in open(th0).read().splitlines())
for line in open(th1).read().splitlines():
    name, v = line.rsplit(" ", 1)
    dv = (int(v) - int(t0.get(name, 0))) / clk
    if dv > 0:
        print(f"  thread {name}: {dv:.2f} s")
print(f"mosquitto CPU: {(int(b1) - int(b0)) / clk:.2f} s; simulate CPU: {int(simcpu) / clk:.2f} s")
EOF
echo "mqscope exit code: $rc; files in $dir"
