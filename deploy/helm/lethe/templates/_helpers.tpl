{{/*
Names. "lethe.fullname" is the prefix of every object: <release>-lethe, or the release name when
it already contains the chart name.
*/}}
{{- define "lethe.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "lethe.fullname" -}}
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

{{- define "lethe.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "lethe.coordinatorName" -}}
{{- printf "%s-coordinator" (include "lethe.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "lethe.workerName" -}}
{{- printf "%s-worker" (include "lethe.fullname" .) | trunc 52 | trimSuffix "-" -}}
{{- end -}}

{{/* The headless Service that gives each worker pod a stable DNS name. */}}
{{- define "lethe.workerHeadlessName" -}}
{{- printf "%s-headless" (include "lethe.workerName" .) -}}
{{- end -}}

{{- define "lethe.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "lethe.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* Labels. Call with (dict "root" $ "component" "coordinator"|"worker"). */}}
{{- define "lethe.selectorLabels" -}}
app.kubernetes.io/name: {{ include "lethe.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "lethe.labels" -}}
helm.sh/chart: {{ include "lethe.chart" .root }}
{{ include "lethe.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/part-of: lethe
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
{{- end -}}

{{/* Images. */}}
{{- define "lethe.coordinatorImage" -}}
{{- $tag := .Values.coordinator.image.tag -}}
{{- if not $tag -}}
{{- $tag = .Chart.AppVersion -}}
{{- if .Values.coordinator.gpu.enabled -}}
{{- $tag = printf "%s%s" $tag .Values.coordinator.gpu.tagSuffix -}}
{{- end -}}
{{- end -}}
{{- printf "%s:%s" .Values.coordinator.image.repository $tag -}}
{{- end -}}

{{/*
Container resources with the GPU limit added when gpu.enabled. Call with the component's
values (.Values.coordinator or .Values.worker).
*/}}
{{- define "lethe.resources" -}}
{{- $resources := deepCopy (default (dict) .resources) -}}
{{- if .gpu.enabled -}}
{{- $limits := default (dict) $resources.limits -}}
{{- $_ := set $limits .gpu.resourceName (int .gpu.count) -}}
{{- $_ := set $resources "limits" $limits -}}
{{- end -}}
{{- toYaml $resources -}}
{{- end -}}

{{- define "lethe.workerImage" -}}
{{- $tag := .Values.worker.image.tag -}}
{{- if not $tag -}}
{{- $tag = .Chart.AppVersion -}}
{{- if .Values.worker.gpu.enabled -}}
{{- $tag = printf "%s%s" $tag .Values.worker.gpu.tagSuffix -}}
{{- end -}}
{{- end -}}
{{- printf "%s:%s" .Values.worker.image.repository $tag -}}
{{- end -}}

{{/* The bundled MinIO's Service name, as the MinIO chart computes its fullname. */}}
{{- define "lethe.minioFullname" -}}
{{- if .Values.minio.fullnameOverride -}}
{{- .Values.minio.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default "minio" .Values.minio.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* The object store URL passed to both components as --store. */}}
{{- define "lethe.storeUrl" -}}
{{- if .Values.store.url -}}
{{- .Values.store.url -}}
{{- else -}}
{{- $endpoint := .Values.s3.endpoint -}}
{{- if .Values.minio.enabled -}}
{{- $endpoint = printf "http://%s:9000" (include "lethe.minioFullname" .) -}}
{{- end -}}
{{- if not $endpoint -}}
{{- fail "lethe: no object store: enable minio (minio.enabled=true), or set s3.endpoint or store.url" -}}
{{- end -}}
{{- $url := printf "s3://%s/%s?endpoint=%s" .Values.s3.bucket .Values.s3.prefix $endpoint -}}
{{- if .Values.s3.region -}}
{{- $url = printf "%s&region=%s" $url .Values.s3.region -}}
{{- end -}}
{{- $url -}}
{{- end -}}
{{- end -}}

{{/* Whether the store is S3 (so S3 credentials are needed). */}}
{{- define "lethe.storeIsS3" -}}
{{- if hasPrefix "s3://" (include "lethe.storeUrl" .) -}}true{{- end -}}
{{- end -}}

{{/* The Secret holding the S3 credentials, and its two keys. */}}
{{- define "lethe.s3SecretName" -}}
{{- if .Values.s3.existingSecret -}}
{{- .Values.s3.existingSecret -}}
{{- else if .Values.minio.enabled -}}
{{- default (include "lethe.minioFullname" .) .Values.minio.existingSecret -}}
{{- else -}}
{{- printf "%s-s3" (include "lethe.fullname" .) -}}
{{- end -}}
{{- end -}}

{{- define "lethe.s3AccessKeyKey" -}}
{{- if .Values.s3.existingSecret -}}
{{- .Values.s3.existingSecretAccessKeyKey -}}
{{- else if .Values.minio.enabled -}}
rootUser
{{- else -}}
accessKey
{{- end -}}
{{- end -}}

{{- define "lethe.s3SecretKeyKey" -}}
{{- if .Values.s3.existingSecret -}}
{{- .Values.s3.existingSecretSecretKeyKey -}}
{{- else if .Values.minio.enabled -}}
rootPassword
{{- else -}}
secretKey
{{- end -}}
{{- end -}}

{{/* The chart creates the S3 Secret only from inline credentials. */}}
{{- define "lethe.createS3Secret" -}}
{{- if and (include "lethe.storeIsS3" .) (not .Values.s3.existingSecret) (not .Values.minio.enabled) -}}true{{- end -}}
{{- end -}}

{{- define "lethe.tlsSecretName" -}}
{{- default (printf "%s-tls" (include "lethe.fullname" .)) .Values.tls.existingSecret -}}
{{- end -}}

{{/* Environment shared by both components: S3 credentials. */}}
{{- define "lethe.s3Env" -}}
{{- if include "lethe.storeIsS3" . }}
- name: LETHE_S3_ACCESS_KEY
  valueFrom:
    secretKeyRef:
      name: {{ include "lethe.s3SecretName" . }}
      key: {{ include "lethe.s3AccessKeyKey" . }}
- name: LETHE_S3_SECRET_KEY
  valueFrom:
    secretKeyRef:
      name: {{ include "lethe.s3SecretName" . }}
      key: {{ include "lethe.s3SecretKeyKey" . }}
{{- end }}
{{- end -}}

{{/*
A probe's handler. Call with (dict "root" $ "port" <port>). grpc: the kubelet's native gRPC
health check (service "", the server as a whole). exec: the image's probe script.
*/}}
{{- define "lethe.probeHandler" -}}
{{- if eq .root.Values.probes.mode "exec" -}}
exec:
  command:
    - node
    - /opt/lethe/deploy/docker/grpc-health-check.mjs
    - {{ printf "127.0.0.1:%d" (int .port) | quote }}
{{- else -}}
grpc:
  port: {{ int .port }}
{{- end -}}
{{- end -}}

{{/* Volumes and mounts shared by both components: datasets, /tmp, TLS. */}}
{{- define "lethe.commonVolumes" -}}
- name: data
{{- if .Values.data.volume }}
  {{- toYaml .Values.data.volume | nindent 2 }}
{{- else }}
  emptyDir: {}
{{- end }}
- name: tmp
  emptyDir: {}
{{- if .Values.tls.enabled }}
- name: tls
  secret:
    secretName: {{ include "lethe.tlsSecretName" . }}
{{- end }}
{{- end -}}

{{- define "lethe.commonVolumeMounts" -}}
- name: data
  mountPath: {{ .Values.data.mountPath }}
  readOnly: true
- name: tmp
  mountPath: /tmp
{{- if .Values.tls.enabled }}
- name: tls
  mountPath: {{ .Values.tls.mountPath }}
  readOnly: true
{{- end }}
{{- end -}}

{{- define "lethe.metricsAnnotations" -}}
{{- if .Values.metrics.enabled }}
prometheus.io/scrape: "true"
prometheus.io/port: {{ int .Values.metrics.port | quote }}
prometheus.io/path: {{ .Values.metrics.path | quote }}
{{- end }}
{{- end -}}
