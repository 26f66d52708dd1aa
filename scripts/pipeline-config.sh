# ferryd's config for the memif pipeline, shared by scripts/bench.sh and
# scripts/ferryd-instructions.sh (sourced, not run): the demo's VIP with
# PIPELINE_BACKENDS backends, two memif ports whose sockets are in a given
# directory, one worker's table sized by pipeline_capacity.

PIPELINE_BACKENDS=32   # a fleet's size; full NAT holds up to 64,512 flows per backend per worker

# pipeline_capacity K MIX: 2 entries per full-NAT flow, room for mix B's
# closed flows, 25% headroom, at least 65,536.
pipeline_capacity() {
  local k=$1 mix=$2 extra=0 c
  [[ $mix == B ]] && extra=1000000
  c=$(( (2 * (k + extra)) * 5 / 4 ))
  (( c < 65536 )) && c=65536
  echo "$c"
}

# pipeline_config FILE MODE CAPACITY DIR [TCP_SYN]: DIR holds the memif
# sockets and ferryd's control socket; TCP_SYN in seconds (default 10).
pipeline_config() {
  local backends="" i
  for i in $(seq 0 $(( PIPELINE_BACKENDS - 1 ))); do
    backends+="      { address = \"10.77.2.$(( 11 + i ))\"; port = 8000; weight = 100; }"
    (( i < PIPELINE_BACKENDS - 1 )) && backends+=","
    backends+=$'\n'
  done
  cat > "$1" <<EOC
# Written by scripts/pipeline-config.sh: the demo's VIP with $PIPELINE_BACKENDS backends, memif ports, no exception path.
ports = (
  { name = "client"; device = "net_memif0";
    devargs = "net_memif0,role=server,socket=$4/client.sock,id=0";
    address = "10.77.1.1/24"; mtu = 1500; exception_path = false; },
  { name = "backend"; device = "net_memif1";
    devargs = "net_memif1,role=server,socket=$4/backend.sock,id=0";
    address = "10.77.2.1/24"; mtu = 1500; exception_path = false; }
);
workers = { burst_size = 32; flow_capacity = $3; rx_descriptors = 1024; tx_descriptors = 1024;
            mbufs = 16383; idle_sleep_us = 0; };
control = { socket = "$4/ferryd.sock"; metrics_listen = ""; };
vips = (
  { name = "bench"; address = "10.77.1.100"; port = 80; protocol = "tcp"; mode = "$2";
    scheduler = "maglev"; hash = "5-tuple"; table_size = 65537;
    timeouts = { tcp_syn = ${5:-10}; tcp_established = 900; tcp_closing = 1; udp = 30; };
    health = { type = "none"; };
    backends = (
$backends    );
  }
);
EOC
}
