#!/usr/bin/env bash
# A one-node Ceph with a RADOS Gateway on loopback, in a directory of its own, for tests and for trying
# the S3 API by hand. Debian packages: ceph-mon ceph-osd radosgw (Ceph 16.2).
#
#   rgw.sh start DIR MON_PORT RGW_PORT ACCESS_KEY SECRET_KEY [OWNER_PID]
#   rgw.sh stop DIR          # SIGKILL the daemons, remove DIR
#
# With OWNER_PID, a watchdog stops the cluster (as `stop` does) once that process is gone, so a test
# process that dies without cleaning up leaves no daemons behind.
#
# `start` returns once the user exists; radosgw may need a few more seconds before it answers S3
# (test/support/rgw.ts polls for that). Daemons run in the background with their pids in DIR/pids and
# logs in DIR/log. One ceph-mon, one memstore ceph-osd, no ceph-mgr, no cephx. The memstore holds
# RGW_MEMSTORE_BYTES (default 2 GiB); deleted objects' tails stay in it until RGW's garbage collection.
set -euo pipefail

usage() { echo "usage: $0 start DIR MON_PORT RGW_PORT ACCESS_KEY SECRET_KEY | stop DIR" >&2; exit 2; }

stop() {
  local dir=$1
  if [ -f "$dir/pids" ]; then
    # SIGKILL: a memstore OSD writes its whole store to disk on a clean stop, for nothing.
    while read -r pid; do kill -9 "$pid" 2>/dev/null || true; done <"$dir/pids"
  fi
  rm -rf "$dir"
}

start() {
  local dir=$1 mon_port=$2 rgw_port=$3 access=$4 secret=$5 owner=${6:-}
  mkdir -p "$dir"/{log,run,mon,osd/ceph-0}
  dir=$(cd "$dir" && pwd)
  local fsid conf
  fsid=$(cat /proc/sys/kernel/random/uuid)
  conf=$dir/ceph.conf
  cat >"$conf" <<CONF
[global]
fsid = $fsid
mon_host = v2:127.0.0.1:$mon_port
public_addr = 127.0.0.1
cluster_addr = 127.0.0.1
ms_bind_ipv6 = false
run_dir = $dir/run
admin_socket = $dir/run/\$name.asok
log_file = $dir/log/\$name.log
pid_file = $dir/run/\$name.pid
keyring = /dev/null
auth_cluster_required = none
auth_service_required = none
auth_client_required = none
# Without this radosgw loops on "get_initial_auth_request returned -13".
ms_mon_client_mode = crc
osd_pool_default_size = 1
osd_pool_default_min_size = 1
mon_allow_pool_size_one = true
osd_pool_default_pg_num = 8
osd_pool_default_pgp_num = 8
osd_pool_default_pg_autoscale_mode = off
osd_crush_chooseleaf_type = 0
mon_warn_on_pool_no_redundancy = false
mon_allow_pool_delete = true
# Pool creation and OSD boot are paxos proposals: the default 1 s interval makes the start ~13 s.
paxos_propose_interval = 0.05
mon_data = $dir/mon/\$cluster-\$id
osd_data = $dir/osd/\$cluster-\$id
osd_objectstore = memstore
memstore_device_bytes = ${RGW_MEMSTORE_BYTES:-2147483648}
osd_memory_target = 268435456
debug_ms = 0
[client.rgw]
rgw_frontends = beast endpoint=127.0.0.1:$rgw_port
rgw_thread_pool_size = 32
rgw_enable_usage_log = false
CONF
  : >"$dir/pids"
  if [ -n "$owner" ]; then
    (
      while [ -d "$dir" ] && kill -0 "$owner" 2>/dev/null; do sleep 1; done
      [ -d "$dir" ] && stop "$dir"
    ) </dev/null >/dev/null 2>&1 &
  fi
  monmaptool --create --fsid "$fsid" --addv a "[v2:127.0.0.1:$mon_port]" "$dir/monmap" >"$dir/log/setup.log" 2>&1
  ceph-mon -c "$conf" --mkfs -i a --monmap "$dir/monmap" >>"$dir/log/setup.log" 2>&1
  ceph-mon -c "$conf" -i a -f </dev/null >>"$dir/log/mon.out" 2>&1 &
  echo $! >>"$dir/pids"

  local osd_uuid
  osd_uuid=$(cat /proc/sys/kernel/random/uuid)
  ceph -c "$conf" --connect-timeout 30 osd new "$osd_uuid" 0 >>"$dir/log/setup.log" 2>&1
  ceph-osd -c "$conf" -i 0 --mkfs --osd-uuid "$osd_uuid" >>"$dir/log/setup.log" 2>&1
  ceph-osd -c "$conf" -i 0 -f </dev/null >>"$dir/log/osd.out" 2>&1 &
  echo $! >>"$dir/pids"

  radosgw -c "$conf" -n client.rgw -f </dev/null >>"$dir/log/rgw.out" 2>&1 &
  echo $! >>"$dir/pids"

  radosgw-admin -c "$conf" -n client.admin user create --uid tests --display-name tests \
    --access-key "$access" --secret-key "$secret" >>"$dir/log/setup.log" 2>&1
}

case "${1:-}" in
  start) [ $# -eq 6 ] || [ $# -eq 7 ] || usage; start "${@:2}" ;;
  stop) [ $# -eq 2 ] || usage; stop "$2" ;;
  *) usage ;;
esac
