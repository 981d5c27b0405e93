#!/usr/bin/env bash
# dovecot.sh - start/stop a private Dovecot 2.3 (LMTP + IMAP + Pigeonhole
# Sieve) instance writing Maildir++, the reference mailstow is measured against;
# must not touch anything outside WORKDIR or any other Dovecot instance.
# (From the team's shared bench scripts, anchor-dovecot.sh; used by bench.py.)
#
# Usage:
#   anchor-dovecot.sh [WORKDIR] [start|stop|restart|status|wipe]   (default: /tmp/anchor-dovecot start)
#   anchor-dovecot.sh stop [WORKDIR]                                (argument order may be swapped)
# Env:
#   SIEVE_SCRIPT=/path/to/script.sieve  copy that script to EVERY user as the
#       personal active script (~/.dovecot.sieve -> ~/sieve/bench.sieve),
#       precompiled with sievec.  Unset/empty = no Sieve script (the sieve
#       plugin stays loaded but finds no script -> implicit keep).
#   LMTP_PORT (24024) IMAP_PORT (14143) PASSWORD (benchpass) NUSERS (100) DOMAIN (example.test)
#   EXTRA_CONF  more dovecot.conf text, appended as is (anchors.py: what
#       dovecot-lda run by Postfix's pipe(8) as vmail needs)
#
# Layout (WORKDIR):
#   dovecot.conf, users (passwd-file), dovecot.pid (master PID), log/dovecot.log,
#   run/ (base_dir), state/, mail/<domain>/<user>/Maildir  (Maildir++; folders = .Name)
#
# Users: user0..user99@example.test, all uid/gid of system user 'vmail', password $PASSWORD.
# Aliases for /usr/sbin/smtp-source: with "-t user@example.test -r R" smtp-source
# sends RCPT TO <Ruser@..>, ..., <2user@..>, <user@..> (it PREPENDS a number).
# So the passwd-file also carries alias entries  "user@" -> home of user0 and
# "<N>user@" -> home of userN (N=1..99); they share the canonical user's home/Maildir.
#
# Durability: Dovecot defaults are kept on purpose (verified with doveconf -d, 2.3.19.1):
#   mail_fsync = optimized        (fsync the message file before the LMTP 250 reply, and
#                                  dovecot-uidlist/index on commit; no per-dir fsync)
#   mail_nfs_storage = no, mail_nfs_index = no, mmap_disable = no
#   maildir_very_dirty_syncs = no, maildir_stat_dirs = no, maildir_copy_with_hardlinks = yes
#   lmtp_rcpt_check_quota = no, lmtp_add_received_header = yes
# Only non-default knobs that matter for delivery: lda_mailbox_autocreate = yes
# (so Sieve fileinto can create folders) and lda_mailbox_autosubscribe = yes.
set -euo pipefail

ARG1=${1:-}
ARG2=${2:-}
case "$ARG1" in
  start|stop|restart|status|wipe) MODE=$ARG1; WORKDIR=${ARG2:-/tmp/anchor-dovecot} ;;
  *) WORKDIR=${ARG1:-/tmp/anchor-dovecot}; MODE=${ARG2:-start} ;;
esac
WORKDIR=$(realpath -m "$WORKDIR")
LMTP_PORT=${LMTP_PORT:-24024}
IMAP_PORT=${IMAP_PORT:-14143}
PASSWORD=${PASSWORD:-benchpass}
NUSERS=${NUSERS:-100}
DOMAIN=${DOMAIN:-example.test}
SIEVE_SCRIPT=${SIEVE_SCRIPT:-}
PIDFILE=$WORKDIR/dovecot.pid
CONF=$WORKDIR/dovecot.conf
MAILROOT=$WORKDIR/mail/$DOMAIN

log() { echo "anchor-dovecot: $*" >&2; }

stop_dovecot() {
  if [[ -s $PIDFILE ]]; then
    local pid; pid=$(cat "$PIDFILE")
    if kill -0 "$pid" 2>/dev/null; then
      log "stopping dovecot master pid $pid"
      kill -TERM "$pid"
      for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      if kill -0 "$pid" 2>/dev/null; then log "pid $pid still alive after 10s, sending KILL"; kill -KILL "$pid" || true; fi
    else
      log "pid $pid not running"
    fi
    rm -f "$PIDFILE"
  else
    log "no pidfile $PIDFILE"
  fi
}

ensure_packages() {
  local pkgs=(dovecot-core dovecot-lmtpd dovecot-imapd dovecot-pop3d dovecot-sieve dovecot-managesieved postfix swaks)
  local missing=()
  for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  if ((${#missing[@]})); then
    log "installing: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
    echo "postfix postfix/mailname string localhost" | debconf-set-selections
    timeout 600 apt-get install -y --no-install-recommends "${missing[@]}"
  fi
  # Debian's postinst may auto-start system daemons when a service manager exists; we
  # never use them (this script only runs its own instance with -c $CONF).
}

ensure_vmail() {
  if ! getent passwd vmail >/dev/null; then
    log "creating system user vmail"
    useradd --system --user-group --home-dir /nonexistent --no-create-home --shell /usr/sbin/nologin vmail
  fi
  VUID=$(id -u vmail); VGID=$(id -g vmail)
}

write_config() {
  mkdir -p "$WORKDIR"/{run,state,log} "$MAILROOT"
  chmod 0755 "$WORKDIR" "$WORKDIR/mail" "$MAILROOT"
  chown vmail:vmail "$MAILROOT"
  # log dir: written by the master (root) only; state_dir must exist
  # passwd-file: user:password:uid:gid:gecos:home:shell:extra
  local users=$WORKDIR/users
  : > "$users.tmp"
  for ((i = 0; i < NUSERS; i++)); do
    echo "user$i@$DOMAIN:{PLAIN}$PASSWORD:$VUID:$VGID::$MAILROOT/user$i::" >> "$users.tmp"
  done
  echo "user@$DOMAIN:{PLAIN}$PASSWORD:$VUID:$VGID::$MAILROOT/user0::" >> "$users.tmp"
  for ((i = 1; i < NUSERS; i++)); do
    echo "${i}user@$DOMAIN:{PLAIN}$PASSWORD:$VUID:$VGID::$MAILROOT/user$i::" >> "$users.tmp"
  done
  mv "$users.tmp" "$users"
  chmod 0640 "$users"; chown root:dovecot "$users"

  cat > "$CONF" <<EOF
# Generated by anchor-dovecot.sh - private benchmark instance. Dovecot $(dovecot --version 2>/dev/null || echo '?')
instance_name = anchor-dovecot
base_dir = $WORKDIR/run
state_dir = $WORKDIR/state
log_path = $WORKDIR/log/dovecot.log
info_log_path = $WORKDIR/log/dovecot.log
debug_log_path = $WORKDIR/log/dovecot.log
protocols = imap lmtp
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
first_valid_uid = $VUID
last_valid_uid = $VUID
first_valid_gid = $VGID
last_valid_gid = $VGID
mail_uid = vmail
mail_gid = vmail
mail_location = maildir:~/Maildir
mail_privileged_group =
# --- durability: Dovecot defaults, stated explicitly (do not change for the anchor) ---
mail_fsync = optimized
mail_nfs_storage = no
mail_nfs_index = no
# ---
lda_mailbox_autocreate = yes
lda_mailbox_autosubscribe = yes
postmaster_address = postmaster@$DOMAIN
hostname = anchor.$DOMAIN
recipient_delimiter = +

passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%u $users
}
userdb {
  driver = passwd-file
  args = username_format=%u $users
}

service lmtp {
  inet_listener lmtp {
    address = 127.0.0.1
    port = $LMTP_PORT
  }
  unix_listener lmtp {
    mode = 0666
  }
}
service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = $IMAP_PORT
  }
  inet_listener imaps {
    port = 0
  }
}
service auth {
  unix_listener auth-userdb {
    mode = 0660
    user = vmail
    group = vmail
  }
}

protocol lmtp {
  mail_plugins = \$mail_plugins sieve
}
plugin {
  # personal script per user; missing file = no filtering (implicit keep)
  sieve = file:~/sieve;active=~/.dovecot.sieve
  sieve_extensions = +imap4flags
}
EOF
  if [[ -n ${EXTRA_CONF:-} ]]; then printf '%s\n' "$EXTRA_CONF" >> "$CONF"; fi
}

install_sieve() {
  # (re)install or remove the per-user active script
  local i home
  for ((i = 0; i < NUSERS; i++)); do
    home=$MAILROOT/user$i
    mkdir -p "$home"
    rm -rf "$home/sieve" "$home/.dovecot.sieve" "$home/.dovecot.svbin"
    if [[ -n $SIEVE_SCRIPT ]]; then
      mkdir -p "$home/sieve"
      cp "$SIEVE_SCRIPT" "$home/sieve/bench.sieve"
      ln -s sieve/bench.sieve "$home/.dovecot.sieve"
    fi
    chown -R vmail:vmail "$home"
  done
  if [[ -n $SIEVE_SCRIPT ]]; then
    # precompile once per user so delivery does not pay compilation (sievec writes bench.svbin)
    for ((i = 0; i < NUSERS; i++)); do
      home=$MAILROOT/user$i
      timeout 30 setpriv --reuid="$VUID" --regid="$VGID" --clear-groups \
        sievec -c "$CONF" "$home/sieve/bench.sieve" >/dev/null 2>"$WORKDIR/log/sievec.err" || {
          log "sievec failed for user$i:"; cat "$WORKDIR/log/sievec.err" >&2; exit 1; }
    done
    log "installed + compiled $SIEVE_SCRIPT for $NUSERS users"
  fi
}

start_dovecot() {
  ensure_packages
  ensure_vmail
  if [[ -s $PIDFILE ]] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
    log "already running (pid $(cat "$PIDFILE")); use restart"; exit 1
  fi
  write_config
  install_sieve
  doveconf -c "$CONF" -n >/dev/null   # syntax check; aborts (set -e) on error
  rm -f "$WORKDIR/run/master.pid"
  dovecot -c "$CONF"                  # daemonizes; master writes base_dir/master.pid
  for _ in $(seq 1 100); do [[ -s $WORKDIR/run/master.pid ]] && break; sleep 0.1; done
  [[ -s $WORKDIR/run/master.pid ]] || { log "dovecot did not start; see $WORKDIR/log/dovecot.log"; tail -20 "$WORKDIR/log/dovecot.log" >&2; exit 1; }
  cp "$WORKDIR/run/master.pid" "$PIDFILE"
  # wait for the LMTP port
  for _ in $(seq 1 100); do
    (exec 3<>/dev/tcp/127.0.0.1/$LMTP_PORT) 2>/dev/null && break; sleep 0.1
  done
  log "dovecot master pid $(cat "$PIDFILE"); LMTP 127.0.0.1:$LMTP_PORT IMAP 127.0.0.1:$IMAP_PORT; mail $MAILROOT; sieve=${SIEVE_SCRIPT:-none}"
}

case "$MODE" in
  start) start_dovecot ;;
  stop) stop_dovecot ;;
  restart) stop_dovecot; start_dovecot ;;
  status) if [[ -s $PIDFILE ]] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then echo "running $(cat "$PIDFILE")"; else echo "stopped"; exit 1; fi ;;
  wipe) # delete delivered mail (keeps homes and sieve scripts); safe while idle
    find "$MAILROOT" -mindepth 2 -maxdepth 2 -name Maildir -type d -exec rm -rf {} + ;;
  *) echo "usage: $0 [WORKDIR] [start|stop|restart|status|wipe]" >&2; exit 2 ;;
esac
