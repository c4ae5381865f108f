# An Azurite (the Azure Blob emulator, scripts/bootstrap-tests.sh installs it) that pods
# can reach, for the az:// scenario: it listens inside the network namespace on the node
# IP ($NODE_IP:$AZURITE_PORT, blob endpoint http://$NODE_IP:$AZURITE_PORT/$ACCOUNT); the
# machine's own namespace reaches it through a forwarder on 127.0.0.1:$HOST_AZURITE_PORT.
# Sourced by e2e/cluster.sh.
#
# The storage account is made at azurite-up with a new key, written, mode 0600, to
# $STATE/azurite/credentials as AZURE_STORAGE_ACCOUNT_NAME=... and
# AZURE_STORAGE_ACCOUNT_KEY=... lines; it reaches Azurite through its environment
# (AZURITE_ACCOUNTS), never its argv. The data is wiped at every azurite-up.

AZURITE_PORT=10000
AZURITE_ACCOUNT=ofe2e

azurite_up() {
  server_preflight azurite azurite-blob "$HOST_AZURITE_PORT" OPENFILES_E2E_AZURITE_PORT || return 0
  local dir="$STATE/azurite" key
  rm -rf "$dir"
  mkdir -p "$dir/data"
  chmod 700 "$dir"
  key=$(openssl rand -base64 32 | tr -d '\n')
  (umask 077; printf 'AZURE_STORAGE_ACCOUNT_NAME=%s\nAZURE_STORAGE_ACCOUNT_KEY=%s\n' \
    "$AZURITE_ACCOUNT" "$key" >"$dir/credentials")
  start_daemon azurite AZURITE_ACCOUNTS="$AZURITE_ACCOUNT:$key" \
    "$BIN/azurite-blob" --blobHost "$NODE_IP" --blobPort "$AZURITE_PORT" \
    --location "$dir/data" --skipApiVersionCheck --disableTelemetry --silent
  start_forwarder azurite-forward "$HOST_AZURITE_PORT" "$AZURITE_PORT"
  # Any HTTP answer (an unsigned request gets 403) means it serves.
  wait_for 60 "Azurite ready" azurite curl -s -o /dev/null \
    "http://127.0.0.1:$HOST_AZURITE_PORT/$AZURITE_ACCOUNT?comp=list"
  echo "azurite-up: http://127.0.0.1:$HOST_AZURITE_PORT/$AZURITE_ACCOUNT (machine)," \
    "http://$NODE_IP:$AZURITE_PORT/$AZURITE_ACCOUNT (pods); key in $dir/credentials"
}

azurite_down() {
  stop_daemon azurite-forward 5
  stop_daemon azurite 10
  [[ "${1:-}" == quiet ]] || echo "azurite-down: stopped"
}
