# Certificates and kubeconfigs of the e2e cluster, made with openssl.
# Sourced by e2e/cluster.sh; uses $PKI, $STATE, $NODE_IP, $NODE_NAME,
# $KUBE_SERVICE_IP, $HOST_API_PORT.
#
# Every key is ECDSA P-256 (fast to make). The set is kept between runs and
# made again when the addresses it names change or a certificate nears expiry.

DAYS=365

ossl() { openssl "$@" >/dev/null 2>&1 || { echo "openssl $1 failed" >&2; openssl "$@" >&2; return 1; }; }

new_key() { ossl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$PKI/$1.key"; }

new_ca() { # new_ca NAME CN
  new_key "$1"
  ossl req -x509 -new -key "$PKI/$1.key" -subj "/CN=$2" -days "$DAYS" -out "$PKI/$1.crt" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign"
}

new_cert() { # new_cert NAME CA SUBJECT USAGE [SANS]: a leaf certificate signed by CA
  local name=$1 ca=$2 subject=$3 usage=$4 sans=${5:-} ext="$PKI/$1.ext"
  new_key "$name"
  ossl req -new -key "$PKI/$name.key" -subj "$subject" -out "$PKI/$name.csr"
  {
    echo "basicConstraints=critical,CA:FALSE"
    echo "keyUsage=critical,digitalSignature,keyEncipherment"
    echo "extendedKeyUsage=$usage"
    [[ -n "$sans" ]] && echo "subjectAltName=$sans"
  } >"$ext"
  ossl x509 -req -in "$PKI/$name.csr" -CA "$PKI/$ca.crt" -CAkey "$PKI/$ca.key" \
    -CAcreateserial -days "$DAYS" -extfile "$ext" -out "$PKI/$name.crt"
  rm -f "$PKI/$name.csr" "$ext"
}

pki_identity() { # what the certificates encode; a change means a new set
  echo "v1 $NODE_IP $NODE_NAME $KUBE_SERVICE_IP"
}

pki_fresh() {
  [[ -f "$PKI/identity" && "$(cat "$PKI/identity")" == "$(pki_identity)" ]] || return 1
  local c
  for c in ca front-proxy-ca apiserver apiserver-kubelet-client front-proxy-client admin \
    kubelet kubelet-client controller-manager scheduler kube-proxy; do
    [[ -f "$PKI/$c.crt" && -f "$PKI/$c.key" ]] || return 1
    # one day of validity left at least
    openssl x509 -checkend 86400 -noout -in "$PKI/$c.crt" >/dev/null 2>&1 || return 1
  done
  [[ -f "$PKI/sa.key" && -f "$PKI/sa.pub" ]]
}

make_pki() {
  if pki_fresh; then
    return 0
  fi
  rm -rf "$PKI"
  mkdir -p "$PKI"
  chmod 700 "$PKI"
  new_ca ca openfiles-e2e-ca
  new_ca front-proxy-ca openfiles-e2e-front-proxy-ca
  local svc="DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc"
  svc="$svc,DNS:kubernetes.default.svc.cluster.local"
  new_cert apiserver ca "/CN=kube-apiserver" serverAuth \
    "IP:127.0.0.1,IP:$NODE_IP,IP:$KUBE_SERVICE_IP,DNS:localhost,$svc"
  new_cert apiserver-kubelet-client ca "/O=system:masters/CN=kube-apiserver-kubelet-client" clientAuth
  new_cert front-proxy-client front-proxy-ca "/CN=front-proxy-client" clientAuth
  new_cert admin ca "/O=system:masters/CN=openfiles-e2e-admin" clientAuth
  new_cert kubelet ca "/CN=$NODE_NAME" serverAuth "IP:$NODE_IP,DNS:$NODE_NAME"
  new_cert kubelet-client ca "/O=system:nodes/CN=system:node:$NODE_NAME" clientAuth
  new_cert controller-manager ca "/CN=system:kube-controller-manager" clientAuth
  new_cert scheduler ca "/CN=system:kube-scheduler" clientAuth
  new_cert kube-proxy ca "/CN=system:kube-proxy" clientAuth
  new_key sa
  ossl pkey -in "$PKI/sa.key" -pubout -out "$PKI/sa.pub"
  chmod 600 "$PKI"/*.key
  pki_identity >"$PKI/identity"
}

kubeconfig() { # kubeconfig FILE SERVER CERT: a kubeconfig that uses CERT's client certificate
  cat >"$1" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: openfiles-e2e
  cluster:
    server: $2
    certificate-authority: $PKI/ca.crt
users:
- name: $3
  user:
    client-certificate: $PKI/$3.crt
    client-key: $PKI/$3.key
contexts:
- name: openfiles-e2e
  context:
    cluster: openfiles-e2e
    user: $3
current-context: openfiles-e2e
EOF
  chmod 600 "$1"
}

make_kubeconfigs() {
  local inside="https://$NODE_IP:6443" c
  mkdir -p "$STATE/kubeconfigs"
  for c in admin kubelet-client controller-manager scheduler kube-proxy; do
    kubeconfig "$STATE/kubeconfigs/$c" "$inside" "$c"
  done
  # the one for kubectl and helm in the machine's own namespace, through the forwarder
  kubeconfig "$STATE/kubeconfig" "https://127.0.0.1:$HOST_API_PORT" admin
}
