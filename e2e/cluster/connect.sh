#!/bin/sh
# connect.sh NETNS HOST PORT: join stdin/stdout to HOST:PORT from inside NETNS.
# The forwarders in e2e/cluster.sh run one of these per accepted connection,
# so the machine's own namespace never sends a packet to the cluster's addresses.
exec nsenter --net="/run/netns/$1" -- socat STDIO "TCP:$2:$3"
