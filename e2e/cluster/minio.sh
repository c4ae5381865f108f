# A MinIO that pods can reach: it listens inside the network namespace on the
# node IP ($NODE_IP:$MINIO_PORT); the machine's own namespace reaches it through
# a forwarder on 127.0.0.1:$HOST_MINIO_PORT. Sourced by e2e/cluster.sh.
#
# The root credentials are made at minio-up and written, mode 0600, to
# $STATE/minio/credentials as AWS_ACCESS_KEY_ID=... and AWS_SECRET_ACCESS_KEY=...
# lines; they reach MinIO through its environment, never its argv. The data is
# wiped at every minio-up.

minio_up() {
  server_preflight minio minio "$HOST_MINIO_PORT" OPENFILES_E2E_MINIO_PORT || return 0
  local dir="$STATE/minio" user secret
  rm -rf "$dir"
  mkdir -p "$dir/data"
  chmod 700 "$dir"
  user="of-$(openssl rand -hex 6)"
  secret=$(openssl rand -base64 24 | tr -d '/+=\n')
  (umask 077; printf 'AWS_ACCESS_KEY_ID=%s\nAWS_SECRET_ACCESS_KEY=%s\n' "$user" "$secret" >"$dir/credentials")
  start_daemon minio HOME="$dir" MINIO_ROOT_USER="$user" MINIO_ROOT_PASSWORD="$secret" \
    MINIO_BROWSER=off MINIO_UPDATE=off MINIO_CI_CD=1 \
    "$BIN/minio" server "$dir/data" --quiet --address "$NODE_IP:$MINIO_PORT" \
    --console-address "127.0.0.1:9001"
  start_forwarder minio-forward "$HOST_MINIO_PORT" "$MINIO_PORT"
  wait_for 60 "MinIO ready" minio curl -sf -o /dev/null "http://127.0.0.1:$HOST_MINIO_PORT/minio/health/ready"
  echo "minio-up: http://127.0.0.1:$HOST_MINIO_PORT (machine), http://$NODE_IP:$MINIO_PORT (pods);" \
    "credentials in $dir/credentials"
}

minio_down() {
  stop_daemon minio-forward 5
  stop_daemon minio 10
  [[ "${1:-}" == quiet ]] || echo "minio-down: stopped"
}
