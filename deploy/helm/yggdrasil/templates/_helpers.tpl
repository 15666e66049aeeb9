{{/* The chart name, or nameOverride. */}}
{{- define "yggdrasil.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The prefix of every object: fullnameOverride, else the release name (with the chart name unless it already holds it). */}}
{{- define "yggdrasil.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Selector labels of a component: dict "root" $ "component" "api". */}}
{{- define "yggdrasil.selectorLabels" -}}
app.kubernetes.io/name: {{ include "yggdrasil.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* The recommended app.kubernetes.io labels of a component: dict "root" $ "component" "api". */}}
{{- define "yggdrasil.labels" -}}
{{ include "yggdrasil.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/part-of: yggdrasil
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version | replace "+" "_" }}
{{- end -}}

{{/* The Secret the pods read: existingSecret, or the chart's. */}}
{{- define "yggdrasil.secretName" -}}
{{- if .Values.existingSecret -}}
{{- .Values.existingSecret -}}
{{- else -}}
{{- include "yggdrasil.fullname" . }}
{{- end -}}
{{- end -}}

{{/* "url", "sentinel" or "embedded", after yggdrasil.validate. */}}
{{- define "yggdrasil.redisMode" -}}
{{- if .Values.redis.embedded.enabled -}}embedded
{{- else if .Values.redis.sentinel.addrs -}}sentinel
{{- else -}}url
{{- end -}}
{{- end -}}

{{/* The hooks pod's grace period: explicit, or HOOK_SHUTDOWN_TIMEOUT_MS in seconds (rounded up) + 10. */}}
{{- define "yggdrasil.hooksGrace" -}}
{{- $shutdown := int (divf (add .Values.hooks.shutdownTimeoutMs 999) 1000) -}}
{{- if .Values.hooks.terminationGracePeriodSeconds -}}
{{- .Values.hooks.terminationGracePeriodSeconds -}}
{{- else -}}
{{- add $shutdown 10 -}}
{{- end -}}
{{- end -}}

{{/* Variables the chart sets itself or keeps in the Secret: refused in <component>.env. */}}
{{- define "yggdrasil.reservedEnv" -}}
PORT LOG_FORMAT LOG_LEVEL NODE_ENV METRICS_PREFIX LEASE_TTL_MS HEARTBEAT_INTERVAL_MS REDIS_URL REDIS_SENTINEL_ADDRS REDIS_MASTER_NAME REDIS_USERNAME REDIS_TLS REDIS_PASSWORD REDIS_SENTINEL_PASSWORD API_KEYS ADMIN_API_KEYS RUNNER_OFFLINE_HOOK RUNNER_OFFLINE_HOOK_SECRET HOOK_SHUTDOWN_TIMEOUT_MS OTEL_EXPORTER_OTLP_ENDPOINT OTEL_SERVICE_NAME OTEL_EXPORTER_OTLP_HEADERS OTEL_EXPORTER_OTLP_TRACES_HEADERS
{{- end -}}

{{/* Everything values.schema.json cannot say. Fails the render with every reason it finds first. */}}
{{- define "yggdrasil.validate" -}}
{{- $r := .Values.redis -}}
{{- $sources := 0 -}}
{{- if $r.url }}{{ $sources = add1 $sources }}{{ end -}}
{{- if $r.sentinel.addrs }}{{ $sources = add1 $sources }}{{ end -}}
{{- if $r.embedded.enabled }}{{ $sources = add1 $sources }}{{ end -}}
{{- if gt $sources 1 -}}
{{- fail "redis: set only one of redis.url, redis.sentinel.addrs and redis.embedded.enabled" -}}
{{- end -}}
{{- if and (eq $sources 0) (not .Values.existingSecret) -}}
{{- fail "redis: set redis.url (single node), redis.sentinel.addrs with redis.sentinel.masterName, or redis.embedded.enabled (trials only)" -}}
{{- end -}}
{{- if and $r.sentinel.addrs (not $r.sentinel.masterName) -}}
{{- fail "redis.sentinel.masterName is required with redis.sentinel.addrs" -}}
{{- end -}}
{{- if and $r.sentinel.masterName (not $r.sentinel.addrs) -}}
{{- fail "redis.sentinel.masterName is set but redis.sentinel.addrs is empty" -}}
{{- end -}}
{{- if .Values.existingSecret -}}
{{- range $k, $v := .Values.secrets -}}
{{- if $v -}}
{{- fail (printf "secrets.%s is set together with existingSecret: put it in the Secret %s instead" $k $.Values.existingSecret) -}}
{{- end -}}
{{- end -}}
{{- if $r.url -}}
{{- fail (printf "redis.url is set together with existingSecret: put REDIS_URL in the Secret %s instead (a URL may carry a password)" .Values.existingSecret) -}}
{{- end -}}
{{- else -}}
{{- if not .Values.secrets.apiKeys -}}
{{- fail "secrets.apiKeys (API_KEYS) is required, or name a Secret holding it in existingSecret" -}}
{{- end -}}
{{- if and .Values.hooks.urls (not .Values.secrets.hookSecret) -}}
{{- fail "secrets.hookSecret (RUNNER_OFFLINE_HOOK_SECRET) is required when hooks.urls is set: webhooks are never sent unsigned" -}}
{{- end -}}
{{- end -}}
{{- if ge .Values.heartbeatIntervalMs .Values.leaseTtlMs -}}
{{- fail (printf "heartbeatIntervalMs (%v) must be below leaseTtlMs (%v)" .Values.heartbeatIntervalMs .Values.leaseTtlMs) -}}
{{- end -}}
{{- $shutdownSec := divf .Values.hooks.shutdownTimeoutMs 1000 -}}
{{- if and .Values.hooks.terminationGracePeriodSeconds (le (float64 .Values.hooks.terminationGracePeriodSeconds) $shutdownSec) -}}
{{- fail (printf "hooks.terminationGracePeriodSeconds (%v) must exceed hooks.shutdownTimeoutMs (%v ms), or deliveries in flight are killed before they are put back; 0 derives it" .Values.hooks.terminationGracePeriodSeconds .Values.hooks.shutdownTimeoutMs) -}}
{{- end -}}
{{- if and .Values.api.autoscaling.enabled (gt (int .Values.api.autoscaling.minReplicas) (int .Values.api.autoscaling.maxReplicas)) -}}
{{- fail "api.autoscaling.minReplicas must not exceed api.autoscaling.maxReplicas" -}}
{{- end -}}
{{- $reserved := splitList " " (include "yggdrasil.reservedEnv" .) -}}
{{- range $c := list "api" "sweeper" "hooks" -}}
{{- range $k, $_ := (index $.Values $c).env -}}
{{- if has $k $reserved -}}
{{- fail (printf "%s.env.%s: set by the chart (or a secret): use its own value instead" $c $k) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* The pod spec of a service: dict "root" $ "component" "api". */}}
{{- define "yggdrasil.podSpec" -}}
{{- $root := .root -}}
{{- $c := .component -}}
{{- $v := index $root.Values $c -}}
{{- $secret := include "yggdrasil.secretName" $root -}}
{{- $mode := include "yggdrasil.redisMode" $root -}}
automountServiceAccountToken: false
{{- with $root.Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  runAsNonRoot: true
  runAsUser: 65532
  runAsGroup: 65532
  fsGroup: 65532
  seccompProfile:
    type: RuntimeDefault
{{- if eq $c "hooks" }}
terminationGracePeriodSeconds: {{ include "yggdrasil.hooksGrace" $root }}
{{- else }}
terminationGracePeriodSeconds: {{ $v.terminationGracePeriodSeconds }}
{{- end }}
containers:
  - name: {{ $c }}
    image: "{{ $root.Values.image.repository }}/{{ $c }}:{{ $root.Values.image.tag | default $root.Chart.AppVersion }}"
    imagePullPolicy: {{ $root.Values.image.pullPolicy }}
    ports:
      - name: http
        containerPort: {{ $v.port }}
        protocol: TCP
    envFrom:
      - configMapRef:
          name: {{ include "yggdrasil.fullname" $root }}-{{ $c }}
    env:
      {{- if eq $c "api" }}
      - name: API_KEYS
        valueFrom:
          secretKeyRef: {name: {{ $secret }}, key: API_KEYS}
      {{- end }}
      - name: ADMIN_API_KEYS
        valueFrom:
          secretKeyRef: {name: {{ $secret }}, key: ADMIN_API_KEYS, optional: true}
      {{- if eq $c "hooks" }}
      - name: RUNNER_OFFLINE_HOOK_SECRET
        valueFrom:
          secretKeyRef: {name: {{ $secret }}, key: RUNNER_OFFLINE_HOOK_SECRET, optional: true}
      {{- end }}
      {{- if eq $mode "url" }}
      - name: REDIS_URL
        valueFrom:
          secretKeyRef: {name: {{ $secret }}, key: REDIS_URL}
      {{- end }}
      {{- if ne $mode "embedded" }}
      - name: REDIS_PASSWORD
        valueFrom:
          secretKeyRef: {name: {{ $secret }}, key: REDIS_PASSWORD, optional: true}
      {{- end }}
      {{- if eq $mode "sentinel" }}
      - name: REDIS_SENTINEL_PASSWORD
        valueFrom:
          secretKeyRef: {name: {{ $secret }}, key: REDIS_SENTINEL_PASSWORD, optional: true}
      {{- end }}
    # Liveness never touches Redis (/health): a Redis outage must not restart
    # every pod at once. Readiness (/ready) takes a pod out of its Service
    # while Redis does not answer.
    livenessProbe:
      httpGet: {path: /health, port: http}
      periodSeconds: 10
      timeoutSeconds: 2
      failureThreshold: 3
    readinessProbe:
      httpGet: {path: /ready, port: http}
      periodSeconds: 5
      timeoutSeconds: 2
      failureThreshold: 2
    resources:
      {{- toYaml $v.resources | nindent 6 }}
    securityContext:
      runAsNonRoot: true
      runAsUser: 65532
      runAsGroup: 65532
      allowPrivilegeEscalation: false
      readOnlyRootFilesystem: true
      capabilities:
        drop: [ALL]
      seccompProfile:
        type: RuntimeDefault
{{- with $v.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $v.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $v.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}
