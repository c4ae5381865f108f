{{- define "openfiles.labels" -}}
app.kubernetes.io/name: openfiles
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ .Chart.Name }}-{{ .Chart.Version }}
{{- end -}}

{{- define "openfiles.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{/* The image and pull policy lines of a sidecar container; the argument is its
sidecars.<name> value. */}}
{{- define "openfiles.sidecarImage" -}}
image: {{ .repository }}:{{ .tag }}
imagePullPolicy: {{ .pullPolicy }}
{{- end -}}

{{/* Hardening shared by every container that needs no privilege: the operator, the
CSI controller and all sidecars. */}}
{{- define "openfiles.restricted" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: [ALL]
{{- end -}}

{{/* The liveness probe of a CSI plugin container, answered by the livenessprobe sidecar
(the argument is controller.livenessProbe or node.livenessProbe). */}}
{{- define "openfiles.pluginLiveness" -}}
livenessProbe:
  httpGet:
    path: /healthz
    port: healthz
  initialDelaySeconds: 10
  periodSeconds: {{ .periodSeconds }}
  timeoutSeconds: {{ .timeoutSeconds }}
  failureThreshold: {{ .failureThreshold }}
{{- end -}}

{{/* The livenessprobe sidecar: calls Probe on the plugin's socket in /csi for each
/healthz request. Its own timeout is one second under the kubelet's, so the answer
arrives before the kubelet gives up. */}}
{{- define "openfiles.livenessSidecar" -}}
- name: liveness-probe
  {{- include "openfiles.sidecarImage" .root.Values.sidecars.livenessProbe | nindent 2 }}
  args:
    - --csi-address=/csi/csi.sock
    - --http-endpoint=:{{ .probe.port }}
    - --probe-timeout={{ sub .probe.timeoutSeconds 1 }}s
  securityContext:
    {{- include "openfiles.restricted" . | nindent 4 }}
  volumeMounts:
    - name: {{ .socketVolume }}
      mountPath: /csi
{{- end -}}

{{/* Combinations the schema cannot express, refused with the keys to change. */}}
{{- define "openfiles.eventsURL" -}}
{{- /* The nodes' default events URL: events.nats.url, or the in-chart server's Service. */}}
{{- $nats := .Values.events.nats }}
{{- if $nats.url }}
{{- $nats.url }}
{{- else if $nats.server.enabled }}
{{- printf "nats://%s:4222" ($nats.server.clusterIP | default (printf "%s-nats.%s.svc" .Release.Name .Release.Namespace)) }}
{{- end }}
{{- end -}}
{{- define "openfiles.validate" -}}
{{- if and .Values.events.nats.server.enabled .Values.events.nats.url }}
{{- fail "events.nats.server.enabled and events.nats.url exclude each other: the nodes would use the url and the in-chart server would serve nobody" }}
{{- end }}
{{- $sc := .Values.storageClass }}
{{- if $sc.create }}
{{- if not .Values.controller.enabled }}
{{- fail "storageClass.create needs controller.enabled: without csi-provisioner its PVCs would stay Pending" }}
{{- end }}
{{- if not $sc.url }}
{{- fail "storageClass.create needs storageClass.url (s3://bucket[/base])" }}
{{- end }}
{{- if not $sc.secret.name }}
{{- fail "storageClass.create needs storageClass.secret.name: a Secret with accessKeyId and secretAccessKey" }}
{{- end }}
{{- end }}
{{- $m := .Values.node.metrics }}
{{- if and (not $m.enabled) (or $m.service.enabled $m.serviceMonitor.enabled $m.dashboard.enabled) }}
{{- fail "node.metrics.service, .serviceMonitor and .dashboard need node.metrics.enabled" }}
{{- end }}
{{- if and (not .Values.node.enabled) (or $m.service.enabled $m.serviceMonitor.enabled) }}
{{- fail "node.metrics.service and .serviceMonitor need node.enabled (the node plugin serves the metrics)" }}
{{- end }}
{{- $ports := dict "node.livenessProbe.port" .Values.node.livenessProbe.port "node.registrar.healthPort" .Values.node.registrar.healthPort }}
{{- if $m.enabled }}
{{- $_ := set $ports "node.metrics.port" $m.port }}
{{- end }}
{{- $seen := dict }}
{{- range $name, $port := $ports }}
{{- $key := toString $port }}
{{- if hasKey $seen $key }}
{{- fail (printf "%s and %s are both %s: the node plugin's pod needs a port for each" (get $seen $key) $name $key) }}
{{- end }}
{{- $_ := set $seen $key $name }}
{{- end }}
{{- end -}}
