{{/* Object names: <release>-<component>, or logrouter-<component> for a release named logrouter. */}}
{{- define "logrouter.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "logrouter.name" -}}
{{- printf "%s-%s" (include "logrouter.fullname" .root) .component -}}
{{- end -}}

{{- define "logrouter.selectorLabels" -}}
app.kubernetes.io/name: {{ .root.Chart.Name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "logrouter.labels" -}}
{{ include "logrouter.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version }}
{{- end -}}

{{- define "logrouter.image" -}}
{{- $tag := .root.Values.image.tag | default .root.Chart.AppVersion -}}
{{- $repo := .root.Values.image.repository -}}
{{- if eq .component "collector" }}{{ $repo = .root.Values.image.collectorRepository }}{{ end -}}
{{- printf "%s:%s" $repo $tag -}}
{{- end -}}

{{/* Go duration of a number of seconds. */}}
{{- define "logrouter.seconds" -}}
{{- printf "%ds" (int64 .) -}}
{{- end -}}

{{- define "logrouter.brokers" -}}
{{- required "kafka.brokers is required: the Kafka bootstrap brokers, comma-separated host:port (--set kafka.brokers=kafka-0.kafka:9092)" .Values.kafka.brokers -}}
{{- end -}}

{{/* Kafka settings every component shares: environment, volume mounts, volumes. */}}
{{/* Called with the root context, or with (list <root> <component's kafkaSASLSecret>):
a component's own Secret replaces kafka.sasl.secretName for it (docs/kafka-access.md). */}}
{{- define "logrouter.kafkaEnv" -}}
{{- $ctx := . }}
{{- $own := "" }}
{{- if kindIs "slice" . }}{{ $ctx = index . 0 }}{{ $own = index . 1 }}{{ end -}}
- name: LOGROUTER_BROKERS
  value: {{ include "logrouter.brokers" $ctx | quote }}
{{- with $ctx.Values.kafka.tls }}
{{- if .enabled }}
- name: LOGROUTER_KAFKA_TLS
  value: "true"
{{- if .caSecret.name }}
- name: LOGROUTER_KAFKA_TLS_CA
  value: /etc/logrouter/kafka-ca/{{ .caSecret.key }}
{{- end }}
{{- if .clientCertSecret.name }}
- name: LOGROUTER_KAFKA_TLS_CERT
  value: /etc/logrouter/kafka-client/{{ .clientCertSecret.certKey }}
- name: LOGROUTER_KAFKA_TLS_KEY
  value: /etc/logrouter/kafka-client/{{ .clientCertSecret.keyKey }}
{{- end }}
{{- if .insecureSkipVerify }}
- name: LOGROUTER_KAFKA_TLS_INSECURE_SKIP_VERIFY
  value: "true"
{{- end }}
{{- end }}
{{- end }}
{{- with $ctx.Values.kafka.sasl }}
{{- if and $own (not .mechanism) }}
{{- fail "a component's kafkaSASLSecret needs kafka.sasl.mechanism (SCRAM-SHA-512, SCRAM-SHA-256 or PLAIN)" }}
{{- end }}
{{- $secretName := $own | default .secretName }}
{{- if .mechanism }}
- name: LOGROUTER_KAFKA_SASL_MECHANISM
  value: {{ .mechanism | quote }}
- name: LOGROUTER_KAFKA_SASL_USER
  valueFrom:
    secretKeyRef:
      name: {{ required "kafka.sasl.secretName is required with kafka.sasl.mechanism (or each component's kafkaSASLSecret): a Secret with the SASL user name and password" $secretName }}
      key: {{ .userKey }}
- name: LOGROUTER_KAFKA_SASL_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ $secretName }}
      key: {{ .passwordKey }}
{{- end }}
{{- end }}
{{- end -}}

{{- define "logrouter.kafkaVolumeMounts" -}}
{{- with .Values.kafka.tls }}
{{- if and .enabled .caSecret.name }}
- name: kafka-ca
  mountPath: /etc/logrouter/kafka-ca
  readOnly: true
{{- end }}
{{- if and .enabled .clientCertSecret.name }}
- name: kafka-client
  mountPath: /etc/logrouter/kafka-client
  readOnly: true
{{- end }}
{{- end }}
{{- end -}}

{{- define "logrouter.kafkaVolumes" -}}
{{- with .Values.kafka.tls }}
{{- if and .enabled .caSecret.name }}
- name: kafka-ca
  secret:
    secretName: {{ .caSecret.name }}
    items:
      - key: {{ .caSecret.key }}
        path: {{ .caSecret.key }}
{{- end }}
{{- if and .enabled .clientCertSecret.name }}
- name: kafka-client
  secret:
    secretName: {{ .clientCertSecret.name }}
    items:
      - key: {{ .clientCertSecret.certKey }}
        path: {{ .clientCertSecret.certKey }}
      - key: {{ .clientCertSecret.keyKey }}
        path: {{ .clientCertSecret.keyKey }}
{{- end }}
{{- end }}
{{- end -}}

{{/* Object storage credentials as environment variables. */}}
{{- define "logrouter.bucketEnvFrom" -}}
{{- if .Values.bucket.credentialsSecret }}
envFrom:
  - secretRef:
      name: {{ .Values.bucket.credentialsSecret }}
{{- end }}
{{- end -}}

{{/* Pod and container security of the archiver and gateway: non-root, nothing else. */}}
{{- define "logrouter.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .Values.securityContext.runAsUser }}
runAsGroup: {{ .Values.securityContext.runAsGroup }}
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "logrouter.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
privileged: false
capabilities:
  drop: ["ALL"]
{{- end -}}

{{/* Spread replicas over nodes and zones, best effort. */}}
{{- define "logrouter.topologySpread" -}}
topologySpreadConstraints:
  - maxSkew: 1
    topologyKey: kubernetes.io/hostname
    whenUnsatisfiable: ScheduleAnyway
    labelSelector:
      matchLabels:
        {{- include "logrouter.selectorLabels" . | nindent 8 }}
  - maxSkew: 1
    topologyKey: topology.kubernetes.io/zone
    whenUnsatisfiable: ScheduleAnyway
    labelSelector:
      matchLabels:
        {{- include "logrouter.selectorLabels" . | nindent 8 }}
{{- end -}}

{{- define "logrouter.metricsAnnotations" -}}
prometheus.io/scrape: "true"
prometheus.io/port: {{ .Values.metrics.port | quote }}
{{- end -}}

{{/* extraEnv, refused when it repeats a variable the chart sets: Kubernetes would take the
last one, silently overriding a value the chart derives others from (memory from the budget,
the grace period from --shutdown-grace). */}}
{{- define "logrouter.extraEnv" -}}
{{- range .extra }}
{{- if contains (printf "- name: %s\n" .name) (printf "%s\n" $.env) }}
{{- fail (printf "%s.extraEnv sets %s, which the chart sets itself: use the chart's value for it (docs/helm.md)" $.component .name) }}
{{- end }}
{{- end }}
{{- with .extra }}{{ toYaml . }}{{ end }}
{{- end -}}

{{/*
logrouter.nodeFileNamespaces: the platform namespaces of collector.nodeFiles (node-<name>,
internal/topic.NodeSource), comma-separated, for the gateway's --kube-reserved-namespaces.
*/}}
{{- define "logrouter.nodeFileNamespaces" -}}
{{- $out := list -}}
{{- range . }}{{ $out = append $out (printf "node-%s" .name) }}{{ end -}}
{{- join "," $out -}}
{{- end -}}
