{{/*
Names and labels.
*/}}
{{- define "usage-rollup.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "usage-rollup.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "usage-rollup.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "usage-rollup.selectorLabels" -}}
app.kubernetes.io/name: {{ include "usage-rollup.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
usage-rollup.consumerSelectorLabels: selects the consumer pods only, not the migration Job's.
*/}}
{{- define "usage-rollup.consumerSelectorLabels" -}}
{{ include "usage-rollup.selectorLabels" . }}
app.kubernetes.io/component: consumer
{{- end }}

{{- define "usage-rollup.labels" -}}
helm.sh/chart: {{ include "usage-rollup.chart" . }}
{{ include "usage-rollup.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: usage-rollup
{{- end }}

{{- define "usage-rollup.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "usage-rollup.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "usage-rollup.image" -}}
{{- $tag := .Values.image.tag | default .Chart.AppVersion }}
{{- if .Values.image.digest }}
{{- printf "%s:%s@%s" .Values.image.repository $tag .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository $tag }}
{{- end }}
{{- end }}

{{/*
usage-rollup.durationSeconds: a Go duration string ("20s", "1m30s", "500ms", "0") as seconds.
*/}}
{{- define "usage-rollup.durationSeconds" -}}
{{- $d := toString . }}
{{- $unit := "([0-9]+(\\.[0-9]*)?|\\.[0-9]+)(ns|us|µs|ms|s|m|h)" }}
{{- if eq $d "0" }}0
{{- else if not (regexMatch (printf "^(%s)+$" $unit) $d) }}
{{- fail (printf "%q is not a Go duration (e.g. 20s, 1m30s)" $d) }}
{{- else }}
{{- $factor := dict "ns" 0.000000001 "us" 0.000001 "µs" 0.000001 "ms" 0.001 "s" 1.0 "m" 60.0 "h" 3600.0 }}
{{- $total := 0.0 }}
{{- range regexFindAll $unit $d -1 }}
{{- $num := regexFind "^[0-9.]+" . }}
{{- $total = addf $total (mulf (float64 $num) (get $factor (trimPrefix $num .))) }}
{{- end }}
{{- $total }}
{{- end }}
{{- end }}

{{/*
usage-rollup.memoryBytes: a Kubernetes memory quantity ("1Gi", "512Mi", "1G", "1073741824") in bytes.
*/}}
{{- define "usage-rollup.memoryBytes" -}}
{{- $q := include "usage-rollup.configValue" . }}
{{- if not (regexMatch "^[0-9]+(\\.[0-9]+)?(Ki|Mi|Gi|Ti|k|M|G|T)?$" $q) }}
{{- fail (printf "resources.limits.memory %q: goMemLimit.mode=ratio understands plain bytes and the Ki, Mi, Gi, Ti, k, M, G, T suffixes; use goMemLimit.mode=value for other forms" $q) }}
{{- end }}
{{- $num := regexFind "^[0-9.]+" $q }}
{{- $factor := dict "" 1.0 "Ki" 1024.0 "Mi" 1048576.0 "Gi" 1073741824.0 "Ti" 1099511627776.0 "k" 1000.0 "M" 1000000.0 "G" 1000000000.0 "T" 1000000000000.0 }}
{{- mulf (float64 $num) (get $factor (trimPrefix $num $q)) }}
{{- end }}

{{/*
usage-rollup.configValue: one config entry as a string (integers may arrive as float64 from YAML).
*/}}
{{- define "usage-rollup.configValue" -}}
{{- if kindIs "float64" . }}{{ printf "%.0f" . }}{{ else }}{{ toString . }}{{ end }}
{{- end }}

{{- define "usage-rollup.tlsDir" -}}
/etc/usage-rollup/tls/{{ . }}
{{- end }}

{{/*
usage-rollup.configData: the non-secret environment, as the ConfigMap's data (YAML map). The Deployment
loads it with envFrom; the migration Job, which runs before the ConfigMap exists, gets it inline.
*/}}
{{- define "usage-rollup.configData" -}}
{{- $data := dict }}
{{- range $k, $v := .Values.config }}
{{- $s := include "usage-rollup.configValue" $v }}
{{- if ne $s "" }}
{{- $_ := set $data $k $s }}
{{- end }}
{{- end }}
{{- $_ := set $data "METRICS_ADDR" (printf ":%d" (int .Values.metrics.port)) }}
{{- range $svc := list "kafka" "clickhouse" }}
{{- $t := get $.Values.tls $svc }}
{{- $prefix := upper $svc }}
{{- if $t.enabled }}
{{- $dir := include "usage-rollup.tlsDir" $svc }}
{{- $_ := set $data (printf "%s_TLS_ENABLED" $prefix) "true" }}
{{- if $t.ca.existingSecret }}
{{- $_ := set $data (printf "%s_TLS_CA_FILE" $prefix) (printf "%s/ca.crt" $dir) }}
{{- end }}
{{- if $t.client.existingSecret }}
{{- $_ := set $data (printf "%s_TLS_CERT_FILE" $prefix) (printf "%s/client.crt" $dir) }}
{{- $_ := set $data (printf "%s_TLS_KEY_FILE" $prefix) (printf "%s/client.key" $dir) }}
{{- end }}
{{- end }}
{{- end }}
{{- toYaml $data }}
{{- end }}

{{/*
usage-rollup.passwordSource: "existing", "chart" or "" for one entry of .Values.secrets.
*/}}
{{- define "usage-rollup.passwordSource" -}}
{{- if .ref.existingSecret }}existing
{{- else if and .create .ref.value }}chart
{{- end }}
{{- end }}

{{/*
usage-rollup.passwordEnv: CLICKHOUSE_PASSWORD and KAFKA_SASL_PASSWORD as secretKeyRef env entries.
Argument: dict "root" $ "chartSecret" <name of the chart-created Secret to read from>.
*/}}
{{- define "usage-rollup.passwordEnv" -}}
{{- $root := .root }}
{{- $chartSecret := .chartSecret }}
{{- range $item := list (list "CLICKHOUSE_PASSWORD" "clickhousePassword") (list "KAFKA_SASL_PASSWORD" "kafkaSaslPassword") }}
{{- $env := index $item 0 }}
{{- $ref := get $root.Values.secrets (index $item 1) }}
{{- $source := include "usage-rollup.passwordSource" (dict "ref" $ref "create" $root.Values.secrets.create) }}
{{- if eq $source "existing" }}
- name: {{ $env }}
  valueFrom:
    secretKeyRef:
      name: {{ $ref.existingSecret }}
      key: {{ $ref.key }}
{{- else if eq $source "chart" }}
- name: {{ $env }}
  valueFrom:
    secretKeyRef:
      name: {{ $chartSecret }}
      key: {{ $env }}
{{- end }}
{{- end }}
{{- end }}

{{/*
usage-rollup.chartSecretData: the data of the chart-created Secret, keyed by variable name (base64).
*/}}
{{- define "usage-rollup.chartSecretData" -}}
{{- $data := dict }}
{{- range $item := list (list "CLICKHOUSE_PASSWORD" "clickhousePassword") (list "KAFKA_SASL_PASSWORD" "kafkaSaslPassword") }}
{{- $ref := get $.Values.secrets (index $item 1) }}
{{- if eq (include "usage-rollup.passwordSource" (dict "ref" $ref "create" $.Values.secrets.create)) "chart" }}
{{- $_ := set $data (index $item 0) ($ref.value | b64enc) }}
{{- end }}
{{- end }}
{{- if $data }}{{ toYaml $data }}{{ end }}
{{- end }}

{{/*
usage-rollup.tlsVolumes / tlsVolumeMounts: one projected volume per TLS-enabled peer with its CA and
client certificate and key under fixed names (ca.crt, client.crt, client.key).
*/}}
{{- define "usage-rollup.tlsVolumes" -}}
{{- range $svc := list "kafka" "clickhouse" }}
{{- $t := get $.Values.tls $svc }}
{{- if and $t.enabled (or $t.ca.existingSecret $t.client.existingSecret) }}
- name: tls-{{ $svc }}
  projected:
    defaultMode: 288  # 0440: owner and the fsGroup (65532) read
    sources:
      {{- if $t.ca.existingSecret }}
      - secret:
          name: {{ $t.ca.existingSecret }}
          items:
            - key: {{ $t.ca.key }}
              path: ca.crt
      {{- end }}
      {{- if $t.client.existingSecret }}
      - secret:
          name: {{ $t.client.existingSecret }}
          items:
            - key: {{ $t.client.certKey }}
              path: client.crt
            - key: {{ $t.client.keyKey }}
              path: client.key
      {{- end }}
{{- end }}
{{- end }}
{{- end }}

{{- define "usage-rollup.tlsVolumeMounts" -}}
{{- range $svc := list "kafka" "clickhouse" }}
{{- $t := get $.Values.tls $svc }}
{{- if and $t.enabled (or $t.ca.existingSecret $t.client.existingSecret) }}
- name: tls-{{ $svc }}
  mountPath: {{ include "usage-rollup.tlsDir" $svc }}
  readOnly: true
{{- end }}
{{- end }}
{{- end }}

{{/*
usage-rollup.goMemLimitEnv: the GOMEMLIMIT env entry (see goMemLimit in values.yaml).
*/}}
{{- define "usage-rollup.goMemLimitEnv" -}}
{{- $g := .Values.goMemLimit }}
{{- $limit := dig "limits" "memory" "" (.Values.resources | default dict) }}
{{- if eq $g.mode "ratio" }}
{{- if $limit }}
{{- $bytes := include "usage-rollup.memoryBytes" $limit | float64 }}
- name: GOMEMLIMIT
  value: {{ printf "%dMiB" (int64 (floor (divf (mulf $bytes $g.ratio) 1048576.0))) | quote }}
{{- end }}
{{- else if eq $g.mode "resourceFieldRef" }}
- name: GOMEMLIMIT
  valueFrom:
    resourceFieldRef:
      containerName: consumer
      resource: limits.memory
      divisor: "1"
{{- else if eq $g.mode "value" }}
- name: GOMEMLIMIT
  value: {{ required "goMemLimit.value is required with goMemLimit.mode=value" $g.value | quote }}
{{- end }}
{{- end }}

{{/*
usage-rollup.podCommon: the pod-level fields shared by the Deployment and the migration Job.
*/}}
{{- define "usage-rollup.podCommon" -}}
automountServiceAccountToken: false
enableServiceLinks: false
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- with .Values.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
{{- with .Values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/*
usage-rollup.validate: checks that span several values, which the JSON schema cannot express.
*/}}
{{- define "usage-rollup.validate" -}}
{{- $shutdown := include "usage-rollup.durationSeconds" (.Values.config.SHUTDOWN_TIMEOUT | default "20s") | float64 }}
{{- if le (float64 .Values.terminationGracePeriodSeconds) $shutdown }}
{{- fail (printf "terminationGracePeriodSeconds (%d) must exceed SHUTDOWN_TIMEOUT (%s): Kubernetes would SIGKILL the pod during its final flush" (int .Values.terminationGracePeriodSeconds) (.Values.config.SHUTDOWN_TIMEOUT | default "20s")) }}
{{- end }}
{{- $rebalance := include "usage-rollup.durationSeconds" (.Values.config.KAFKA_REBALANCE_TIMEOUT | default "60s") | float64 }}
{{- if le $rebalance $shutdown }}
{{- fail (printf "config.KAFKA_REBALANCE_TIMEOUT (%s) must exceed SHUTDOWN_TIMEOUT (%s)" (.Values.config.KAFKA_REBALANCE_TIMEOUT | default "60s") (.Values.config.SHUTDOWN_TIMEOUT | default "20s")) }}
{{- end }}
{{- if not .Values.config.KAFKA_BROKERS }}
{{- fail "config.KAFKA_BROKERS is required (comma-separated host:port list)" }}
{{- end }}
{{- $sasl := .Values.config.KAFKA_SASL_MECHANISM }}
{{- $saslPassword := include "usage-rollup.passwordSource" (dict "ref" .Values.secrets.kafkaSaslPassword "create" .Values.secrets.create) }}
{{- if $sasl }}
{{- if not .Values.config.KAFKA_SASL_USERNAME }}
{{- fail (printf "config.KAFKA_SASL_MECHANISM=%s needs config.KAFKA_SASL_USERNAME" $sasl) }}
{{- end }}
{{- if not $saslPassword }}
{{- fail (printf "config.KAFKA_SASL_MECHANISM=%s needs a password: secrets.kafkaSaslPassword.existingSecret, or secrets.create with secrets.kafkaSaslPassword.value" $sasl) }}
{{- end }}
{{- else if or .Values.config.KAFKA_SASL_USERNAME $saslPassword }}
{{- fail "a Kafka SASL username or password is set but config.KAFKA_SASL_MECHANISM is empty" }}
{{- end }}
{{- range $svc := list "kafka" "clickhouse" }}
{{- $t := get $.Values.tls $svc }}
{{- if and (not $t.enabled) (or $t.ca.existingSecret $t.client.existingSecret) }}
{{- fail (printf "tls.%s has certificate Secrets but tls.%s.enabled is false" $svc $svc) }}
{{- end }}
{{- end }}
{{- if and .Values.migrations.enabled .Values.migrations.inPod }}
{{- fail "migrations.inPod applies only with migrations.enabled=false (the Job already migrates)" }}
{{- end }}
{{- if and .Values.secrets.create (not (include "usage-rollup.chartSecretData" .)) }}
{{- fail "secrets.create is true but no password has a value without an existingSecret (secrets.*.value)" }}
{{- end }}
{{- end }}
