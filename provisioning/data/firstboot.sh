#!/usr/bin/env bash
# loa station first boot: turns a freshly written Raspberry Pi OS into the station this bundle describes.
#
#   sudo bash /boot/firmware/loa/firstboot.sh
#
# Idempotent: run it again (after copying a newer bundle, or after a failure) and only what differs changes.
# Progress lines on the terminal; everything, including command output, in /var/log/loa-firstboot.log.
# It also installs loa-firstboot.service, which runs `firstboot.sh --if-changed` at every boot: a bundle that
# was not applied completely (no network for pip, say) or a newer bundle copied onto the card is applied then.
#
# Test hooks, never set on a station:
#   LOA_ROOT=/some/dir  write every file under this prefix instead of /
#   LOA_SANDBOX=1       do not run system commands (apt-get, systemctl, useradd, nft, pip...): log them instead
set -Eeuo pipefail
umask 022

BUNDLE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="${LOA_ROOT:-}"
SANDBOX="${LOA_SANDBOX:-0}"
# shellcheck source=/dev/null
. "$BUNDLE/bundle.env"
APPLIED="$ROOT/var/lib/loa-firstboot/bundle"

if [ "${1:-}" = "--if-changed" ] && [ -f "$APPLIED" ] && [ "$(cat "$APPLIED")" = "$LOA_BUNDLE_ID" ]; then
    exit 0  # at boot: this bundle is already applied (quietly: no log line on every boot)
fi

LOG="$ROOT/var/log/loa-firstboot.log"
mkdir -p "$ROOT/var/log"
exec 3>&1            # the terminal: progress lines only
exec >>"$LOG" 2>&1   # the log: everything

log() {
    local line
    line="$(date -u +%Y-%m-%dT%H:%M:%SZ) $*"
    printf '%s\n' "$line"
    printf '%s\n' "$line" >&3
}
fail() {
    log "FAILED: $*"
    exit 1
}
trap 'log "FAILED at line $LINENO (exit $?): see $LOG"' ERR

# run a system command, or in the sandbox only record it
run() {
    if [ "$SANDBOX" = 1 ]; then
        log "sandbox: $*"
    else
        "$@"
    fi
}

CHANGED=0

# put SRC DEST MODE [OWNER:GROUP]: install SRC as $ROOT/DEST atomically, only when content or mode differ
put() {
    local src=$1 dest=$ROOT$2 mode=$3 owner=${4:-root:root} tmp
    if [ -f "$dest" ] && cmp -s "$src" "$dest" && [ "$(stat -c %a "$dest")" = "${mode#0}" ]; then
        return 0
    fi
    mkdir -p "$(dirname "$dest")"
    tmp="$(mktemp "$dest.XXXXXX")"
    cat "$src" >"$tmp"
    chmod "$mode" "$tmp"
    if [ "$SANDBOX" != 1 ]; then
        chown "$owner" "$tmp"
    fi
    mv -f "$tmp" "$dest"
    log "wrote $2"
    CHANGED=1
}

# put_text DEST MODE [OWNER:GROUP] < text
put_text() {
    local tmp
    tmp="$(mktemp)"
    cat >"$tmp"
    put "$tmp" "$@"
    rm -f "$tmp"
}

check_bundle() {
    [ "$(id -u)" = 0 ] || [ "$SANDBOX" = 1 ] || fail "run as root: sudo bash $BUNDLE/firstboot.sh"
    # FAT boot partitions get corrupted: check every file against the manifest (the key may already be gone)
    (cd "$BUNDLE" && sha256sum --quiet --strict --ignore-missing -c SHA256SUMS) ||
        fail "bundle files damaged (SHA256SUMS mismatch): copy the bundle again"
}

step_packages() {
    local need=() p
    for p in python3-venv python3-dev libportaudio2 portaudio19-dev libsndfile1 espeak-ng nftables \
        systemd-timesyncd openssh-server sudo; do
        if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
            need+=("$p")
        fi
    done
    if [ "${#need[@]}" -gt 0 ]; then
        log "installing packages: ${need[*]}"
        run apt-get update
        run env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${need[@]}"
    fi
}

step_user() {
    if ! getent passwd loa >/dev/null; then
        log "creating system user loa"
        run useradd --system --user-group --home-dir /var/lib/loa --no-create-home --shell /usr/sbin/nologin loa
    fi
    if ! getent group gpio >/dev/null; then
        run groupadd --system gpio  # the unit's SupplementaryGroups needs it (Raspberry Pi OS has it)
    fi
}

step_config() {
    local f
    put "$BUNDLE/station.toml" /etc/loa/station.toml 0644
    put "$BUNDLE/tls/ca.crt" /etc/loa/tls/ca.crt 0644
    put "$BUNDLE/tls/station.crt" /etc/loa/tls/station.crt 0644
    if [ -f "$BUNDLE/tls/station.key" ]; then
        put "$BUNDLE/tls/station.key" /etc/loa/tls/station.key 0640 root:loa
    elif [ ! -f "$ROOT/etc/loa/tls/station.key" ]; then
        fail "no station key in the bundle and none installed: make the bundle again"
    fi
    # the trust anchors are exactly the bundle's: a retired district key must disappear
    for f in "$BUNDLE"/trust/*.pub; do
        put "$f" "/etc/loa/trust/$(basename "$f")" 0644
    done
    for f in "$ROOT"/etc/loa/trust/*.pub; do
        [ -e "$f" ] || continue
        if [ ! -f "$BUNDLE/trust/$(basename "$f")" ]; then
            rm -f "$f"
            log "removed trust anchor $(basename "$f") (no longer trusted by the district)"
            CHANGED=1
        fi
    done
}

step_venv() {
    local venv=/opt/loa/venv wheel="$BUNDLE/$LOA_WHEEL" stamp="$ROOT/opt/loa/installed-wheel.sha256" sum i
    sum="$(sha256sum "$wheel" | cut -d' ' -f1)"
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$sum" ] && { [ "$SANDBOX" = 1 ] || [ -x "$ROOT$venv/bin/loa-station" ]; }; then
        return 0
    fi
    if [ ! -x "$ROOT$venv/bin/python" ]; then
        log "creating $venv"
        run python3 -m venv "$ROOT$venv"
    fi
    log "installing $(basename "$wheel") (dependencies from the package index: needs the network)"
    for i in 1 2 3 4 5; do
        if run "$ROOT$venv/bin/pip" install --upgrade "$wheel"; then
            break
        fi
        [ "$i" = 5 ] && fail "pip install failed 5 times: check the network, then run this script again"
        log "pip install failed (attempt $i); retrying in $((i * 20)) s"
        sleep $((i * 20))
    done
    mkdir -p "$ROOT/usr/local/bin" "$(dirname "$stamp")"
    ln -sfn "$venv/bin/loa-station" "$ROOT/usr/local/bin/loa-station"
    printf '%s\n' "$sum" >"$stamp"
    CHANGED=1
}

step_unit() {
    # the firmware's own strict config check, before the daemon is (re)started with this config
    run "$ROOT/opt/loa/venv/bin/loa-station" check-config /etc/loa/station.toml ||
        fail "the installed software rejects /etc/loa/station.toml (see the log): make the bundle again"
    put "$BUNDLE/systemd/loa-station.service" /etc/systemd/system/loa-station.service 0644
    run systemctl daemon-reload
    run systemctl enable loa-station.service
}

step_watchdog() {
    # systemd feeds the Pi's hardware watchdog (bcm2835-wdt, at most ~15 s): a hung kernel or PID 1 reboots.
    put_text /etc/systemd/system.conf.d/loa-watchdog.conf 0644 <<'CONF'
[Manager]
RuntimeWatchdogSec=15
RebootWatchdogSec=2min
CONF
}

step_time() {
    local zone="/usr/share/zoneinfo/$LOA_TIMEZONE"
    if [ "$(readlink "$ROOT/etc/localtime" 2>/dev/null || true)" != "$zone" ]; then
        mkdir -p "$ROOT/etc"
        ln -sfn "$zone" "$ROOT/etc/localtime"
        log "timezone $LOA_TIMEZONE"
        CHANGED=1
    fi
    printf '%s\n' "$LOA_TIMEZONE" | put_text /etc/timezone 0644
    put_text /etc/systemd/timesyncd.conf.d/loa.conf 0644 <<CONF
# A Pi has no real-time clock: until NTP syncs it runs on a stale time and holds scheduled audio.
[Time]
NTP=$LOA_NTP_SERVERS
FallbackNTP=0.debian.pool.ntp.org 1.debian.pool.ntp.org 2.debian.pool.ntp.org
CONF
    run systemctl enable systemd-timesyncd.service
    run timedatectl set-ntp true || log "warning: timedatectl set-ntp failed (no D-Bus yet?); timesyncd is enabled"
}

step_hostname() {
    local hosts="$ROOT/etc/hosts" tmp
    printf '%s\n' "$LOA_HOSTNAME" | put_text /etc/hostname 0644
    tmp="$(mktemp)"
    if [ -f "$hosts" ]; then
        grep -v '^127\.0\.1\.1[[:space:]]' "$hosts" >"$tmp" || true
    else
        printf '127.0.0.1\tlocalhost\n' >"$tmp"
    fi
    printf '127.0.1.1\t%s\n' "$LOA_HOSTNAME" >>"$tmp"
    put "$tmp" /etc/hosts 0644
    rm -f "$tmp"
    if [ "$(hostname 2>/dev/null || true)" != "$LOA_HOSTNAME" ]; then
        run hostname "$LOA_HOSTNAME"
    fi
}

step_ssh() {
    local home
    if [ ! -f "$BUNDLE/ssh/authorized_keys" ]; then
        log "warning: no ssh/authorized_keys in the bundle: SSH left as the image set it"
        return 0
    fi
    if ! getent passwd "$LOA_ADMIN_USER" >/dev/null; then
        log "creating admin user $LOA_ADMIN_USER (SSH key only, sudo)"
        run useradd --create-home --groups sudo --shell /bin/bash "$LOA_ADMIN_USER"
    fi
    home="$(getent passwd "$LOA_ADMIN_USER" | cut -d: -f6 || true)"
    home="${home:-/home/$LOA_ADMIN_USER}"
    put "$BUNDLE/ssh/authorized_keys" "$home/.ssh/authorized_keys" 0600 "$LOA_ADMIN_USER:$LOA_ADMIN_USER"
    chmod 0700 "$ROOT$home/.ssh"
    if [ "$SANDBOX" != 1 ]; then
        chown "$LOA_ADMIN_USER:$LOA_ADMIN_USER" "$ROOT$home/.ssh"
    fi
    printf '%s ALL=(ALL) NOPASSWD: ALL\n' "$LOA_ADMIN_USER" | put_text /etc/sudoers.d/loa-admin 0440
    run visudo -cf /etc/sudoers.d/loa-admin
    # 00-: sshd keeps the first value it reads, and images may ship 50-cloud-init.conf with passwords on
    put_text /etc/ssh/sshd_config.d/00-loa.conf 0644 <<'CONF'
# loa station: SSH by key only (written by firstboot.sh)
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin no
PubkeyAuthentication yes
X11Forwarding no
CONF
    run sshd -t
    run systemctl enable ssh.service
    run systemctl reload-or-restart ssh.service
}

step_firewall() {
    put "$BUNDLE/nftables.conf" /etc/nftables.conf 0755
    run nft -c -f /etc/nftables.conf
    run systemctl enable nftables.service
    run nft -f /etc/nftables.conf
}

step_boot_hook() {
    put_text /etc/systemd/system/loa-firstboot.service 0644 <<UNIT
# Written by $BUNDLE/firstboot.sh: apply the provisioning bundle on the boot partition when it changed.
[Unit]
Description=loa: apply a new or incompletely applied provisioning bundle
Wants=network-online.target
After=network-online.target
ConditionPathExists=$BUNDLE/firstboot.sh

[Service]
Type=oneshot
ExecStart=/bin/bash $BUNDLE/firstboot.sh --if-changed

[Install]
WantedBy=multi-user.target
UNIT
    run systemctl enable loa-firstboot.service
}

step_finish() {
    mkdir -p "$(dirname "$APPLIED")"
    printf '%s\n' "$LOA_BUNDLE_ID" >"$APPLIED"
    if [ -f "$BUNDLE/tls/station.key" ] && [ "${LOA_KEEP_BUNDLE_KEY:-0}" != 1 ]; then
        # the boot partition is FAT, readable by anyone holding the card: the key lives only in /etc/loa now
        rm -f "$BUNDLE/tls/station.key"
        log "removed the station key from the boot partition (installed in /etc/loa/tls/)"
    fi
    if [ "$CHANGED" = 1 ]; then
        run systemctl restart loa-station.service
        log "done: station $LOA_STATION configured; reboot once so hostname and watchdog take effect"
    else
        log "done: nothing changed (station $LOA_STATION already configured from this bundle)"
    fi
    log "check it: sudo loa-station selftest --config /etc/loa/station.toml"
}

log "loa first boot: station $LOA_STATION, district $LOA_DISTRICT, bundle $BUNDLE"
check_bundle
step_boot_hook  # first: if a later step fails, the next boot retries
step_packages
step_user
step_config
step_venv
step_unit
step_watchdog
step_time
step_hostname
step_ssh
step_firewall
step_finish
