#!/usr/bin/env bash
# full-mailbox.sh - delivery cost into a mailbox that already holds the generated 100,000 messages (index built first, own UIDs or uids = "dovecot"), and the cost of the next `index search` after new mail; must not modify SRC (it works on a copy under /tmp), send traffic anywhere but 127.0.0.1, leave its server running, or signal any process it did not start.
#
# Usage: benches/index/full-mailbox.sh MAILSTOW_BIN [SRC=/tmp/ix-mailbox] [WORK=/tmp/ix-full]
#   SRC is a mailbox.py work directory (mail/example.test/user/Maildir generated there).
# Env: MODES="off own dovecot" CONCS="1 16" REPS=2 COUNT=2000 PORT=24202 BENCH=/work/shared/bench
# For each mode: copy SRC's Maildir to WORK (fresh), `index rebuild` under that mode
# (timed: in dovecot mode this writes every folder's dovecot-uidlist), start the
# server, then per rep and concurrency lmtp-load.sh COUNT messages (the mailbox grows
# by COUNT each run); then deliver 1 message and time `index search --message-id`
# twice (the first reconciles INBOX, whose new/ changed).
set -uo pipefail

BIN=$(realpath "${1:?usage: full-mailbox.sh MAILSTOW_BIN [SRC] [WORK]}")
SRC=$(realpath -m "${2:-/tmp/ix-mailbox}")
W=$(realpath -m "${3:-/tmp/ix-full}")
MODES=${MODES:-"off own dovecot"}
CONCS=${CONCS:-"1 16"}
REPS=${REPS:-2}
COUNT=${COUNT:-2000}
PORT=${PORT:-24202}
BENCH=${BENCH:-/work/shared/bench}
U=user@example.test

case $W in /tmp/*) ;; *) echo "full-mailbox.sh: WORK must be under /tmp" >&2; exit 2 ;; esac
[[ -d $SRC/mail/example.test/user/Maildir ]] || { echo "full-mailbox.sh: no Maildir in $SRC" >&2; exit 2; }

SERVER=
stop_server() {
  [[ -n $SERVER ]] || return 0
  kill -TERM "$SERVER" 2>/dev/null; wait "$SERVER" 2>/dev/null; SERVER=
}
trap stop_server EXIT

ms() { # runs "$@" silently, prints wall ms
  local t0 t1; t0=$(date +%s%N); "$@" >/dev/null 2>&1; t1=$(date +%s%N); echo $(((t1 - t0) / 1000000))
}

for mode in $MODES; do
  case $mode in
    off) index='enabled = false' ;;
    own) index='' ;;
    dovecot) index='uids = "dovecot"' ;;
  esac
  rm -rf "$W"; mkdir -p "$W/mail/example.test/user"
  cp -a "$SRC/mail/example.test/user/Maildir" "$W/mail/example.test/user/"
  printf '%s:{PLAIN}x::::::\n' "$U" > "$W/users"
  printf 'hostname = "bench.test"\n[lmtp]\nlisten = ["127.0.0.1:%s"]\n[storage]\nmail_root = "mail"\n[users]\npasswd_file = "users"\n[log]\nlevel = "warn"\n[sieve]\nautocreate = true\n[index]\n%s\n' \
    "$PORT" "$index" > "$W/m.toml"
  sync
  cd "$W" || exit 1
  if [[ $mode != off ]]; then
    /usr/bin/time -f "$mode: index rebuild of the copy: %e s, %M KiB peak RSS" "$BIN" index rebuild "$U" --config m.toml >/dev/null
  fi
  sleep 2.5 # folder mtimes settle
  "$BIN" serve --config m.toml >> "$W/serve.log" 2>&1 & SERVER=$!
  for _ in $(seq 1 100); do (exec 3<>/dev/tcp/127.0.0.1/"$PORT") 2>/dev/null && break; sleep 0.05; done
  for rep in $(seq 1 "$REPS"); do
    for conc in $CONCS; do
      sync; sleep 1
      line=$("$BENCH/lmtp-load.sh" 127.0.0.1:"$PORT" "$COUNT" "$conc" 4096 1 "$W/mail" "full-$mode")
      echo "$mode,$rep,$line"
    done
  done
  if [[ $mode != off ]]; then
    sleep 2.5
    a=$(ms "$BIN" index search "$U" --config m.toml --message-id nosuch@x)
    b=$(ms "$BIN" index search "$U" --config m.toml --message-id nosuch@x)
    "$BENCH/lmtp-load.sh" 127.0.0.1:"$PORT" 1 1 4096 1 "$W/mail" one >/dev/null
    c=$(ms "$BIN" index search "$U" --config m.toml --message-id nosuch@x)
    d=$(ms "$BIN" index search "$U" --config m.toml --message-id nosuch@x)
    sleep 2.5
    e=$(ms "$BIN" index search "$U" --config m.toml --message-id nosuch@x)
    f=$(ms "$BIN" index search "$U" --config m.toml --message-id nosuch@x)
    echo "$mode: search --message-id (ms): settled $a, $b; after 1 delivery $c, then $d; 2.5 s later $e, then $f"
    [[ $mode == dovecot ]] && ls -la "$W/mail/example.test/user/Maildir/dovecot-uidlist" | awk '{print "dovecot: INBOX dovecot-uidlist bytes: " $5}'
  fi
  stop_server
  cd / || exit 1
done
rm -rf "$W"
