#!/usr/bin/env bash
# delivery.sh - index cost per delivery: runs /work/shared/bench/lmtp-load.sh (throughput) and lmtp-latency.py (p50/p90/p99) against mailstow with [index] enabled = false, the default (own UIDs) and uids = "dovecot", each from an empty mail root; must not touch anything outside WORKDIR (under /tmp), send traffic anywhere but 127.0.0.1, leave its server running, or signal any process it did not start.
#
# Usage: benches/index/delivery.sh MAILSTOW_BIN [OUTDIR=/tmp/ix-delivery] [WORKDIR=/tmp/ix-delivery-work]
# Env:   REPS=5 COUNT=2000 SIZE=4096 CONCS="1 16" MODES="off own dovecot" PORT=24200
#        LAT=1 (also run lmtp-latency.py, COUNT messages per run)  BENCH=/work/shared/bench
#        SETTLE=0 (seconds to wait after wiping the mail root and sync, before the server starts)
#        RSS=1 (sample the server's RSS during lmtp-load.sh; RSS=0: do not)
# Output: OUTDIR/load.csv (mode,rep,load1 (1-min load average at the start) + lmtp-load.sh CSV with RSS columns) and
#         OUTDIR/latency.csv (mode,rep,load1 + lmtp-latency.py --csv); summarize with
#         benches/index/summarize.py delivery OUTDIR.
# Reps are interleaved (rep > concurrency > mode) so that drift of the disk
# spreads over all modes. Each run gets a fresh server and an empty mail root.
set -uo pipefail

BIN=$(realpath "${1:?usage: delivery.sh MAILSTOW_BIN [OUTDIR] [WORKDIR]}")
OUT=$(realpath -m "${2:-/tmp/ix-delivery}")
W=$(realpath -m "${3:-/tmp/ix-delivery-work}")
REPS=${REPS:-5}
COUNT=${COUNT:-2000}
SIZE=${SIZE:-4096}
CONCS=${CONCS:-"1 16"}
MODES=${MODES:-"off own dovecot"}
PORT=${PORT:-24200}
LAT=${LAT:-1}
BENCH=${BENCH:-/work/shared/bench}
SETTLE=${SETTLE:-0}
RSS=${RSS:-1}

case $W in /tmp/*) ;; *) echo "delivery.sh: WORKDIR must be under /tmp" >&2; exit 2 ;; esac
mkdir -p "$OUT" "$W"
LOAD=$OUT/load.csv
LATF=$OUT/latency.csv
[[ -s $LOAD ]] || echo "mode,rep,load1,label,count,concurrency,size,rcpts,wall_s,msgs_per_s,deliveries_per_s,files_found,expected,rc,peak_rss_kib,peak_pss_kib,peak_procs" > "$LOAD"
[[ -s $LATF ]] || echo "mode,rep,load1,label,count,concurrency,size,rcpts,wall_s,msgs_per_s,p50_ms,p90_ms,p99_ms,max_ms,errors" > "$LATF"

# user@ is smtp-source's default recipient; user0@ is lmtp-latency.py's with --users 1.
printf 'user@example.test:{PLAIN}x::::::\nuser0@example.test:{PLAIN}x::::::\n' > "$W/users"

write_config() { # $1 = off | own | dovecot
  local index
  case $1 in
    off) index='enabled = false' ;;
    own) index='' ;;
    dovecot) index='uids = "dovecot"' ;;
    *) echo "delivery.sh: unknown mode $1" >&2; exit 2 ;;
  esac
  printf 'hostname = "bench.test"\n[lmtp]\nlisten = ["127.0.0.1:%s"]\n[storage]\nmail_root = "mail"\n[users]\npasswd_file = "users"\n[log]\nlevel = "warn"\n[sieve]\nautocreate = true\n[index]\n%s\n' \
    "$PORT" "$index" > "$W/m.toml"
}

SERVER=
start_server() {
  if (exec 3<>/dev/tcp/127.0.0.1/"$PORT") 2>/dev/null; then
    echo "delivery.sh: something already listens on 127.0.0.1:$PORT" >&2; exit 1
  fi
  rm -rf "$W/mail"; mkdir -p "$W/mail"; sync
  sleep "$SETTLE"
  (cd "$W" && exec "$BIN" serve --config m.toml >> "$W/serve.log" 2>&1) &
  SERVER=$!
  for _ in $(seq 1 100); do
    (exec 3<>/dev/tcp/127.0.0.1/"$PORT") 2>/dev/null && return 0
    kill -0 "$SERVER" 2>/dev/null || break
    sleep 0.05
  done
  echo "delivery.sh: server did not listen on $PORT; see $W/serve.log" >&2
  stop_server; exit 1
}
stop_server() {
  [[ -n $SERVER ]] || return 0
  kill -TERM "$SERVER" 2>/dev/null
  wait "$SERVER" 2>/dev/null
  SERVER=
}
trap stop_server EXIT

for rep in $(seq 1 "$REPS"); do
  for conc in $CONCS; do
    for mode in $MODES; do
      write_config "$mode"
      start_server
      load=$(cut -d' ' -f1 /proc/loadavg)
      rss_pid=; ((RSS)) && rss_pid=$SERVER
      line=$(RSS_PID=$rss_pid TIMEOUT=600 "$BENCH/lmtp-load.sh" 127.0.0.1:"$PORT" "$COUNT" "$conc" "$SIZE" 1 "$W/mail" "mailstow-$mode")
      echo "$mode,$rep,$load,$line" | tee -a "$LOAD"
      stop_server
      if ((LAT)); then
        start_server
        load=$(cut -d' ' -f1 /proc/loadavg)
        line=$(timeout 600 python3 "$BENCH/lmtp-latency.py" --port "$PORT" --users 1 -n "$COUNT" -c "$conc" --size "$SIZE" --rcpts 1 --csv --label "mailstow-$mode")
        echo "$mode,$rep,$load,$line" | tee -a "$LATF"
        stop_server
      fi
    done
  done
done
grep -ciE "error|panic" "$W/serve.log" | sed 's/^/delivery.sh: server log error lines: /'
