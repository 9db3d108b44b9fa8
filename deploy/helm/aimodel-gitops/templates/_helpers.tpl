{{- define "aimodel-gitops.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "aimodel-gitops.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else if contains (include "aimodel-gitops.name" .) .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name (include "aimodel-gitops.name" .) | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{- define "aimodel-gitops.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "aimodel-gitops.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "aimodel-gitops.selectorLabels" -}}
app.kubernetes.io/name: {{ include "aimodel-gitops.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "aimodel-gitops.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end }}

{{/* Several pods share the queue only through Redis; "true" or "". */}}
{{- define "aimodel-gitops.sharedQueue" -}}
{{- if or .Values.redis.enabled .Values.externalRedis.url .Values.externalRedis.existingSecret }}true{{ end }}
{{- end }}

{{- define "aimodel-gitops.claimName" -}}
{{- .Values.persistence.existingClaim | default (printf "%s-home" (include "aimodel-gitops.fullname" .)) }}
{{- end }}

{{/* The environment every container of the bot gets; secrets only as secretKeyRef. */}}
{{- define "aimodel-gitops.env" -}}
- name: AIMODEL_HOME
  value: /var/lib/aimodel
- name: HOST
  value: "0.0.0.0"
- name: PORT
  value: "3000"
- name: WEB_CONCURRENCY
  value: {{ .Values.web.concurrency | quote }}
- name: WEB_THREADS
  value: {{ .Values.web.threads | quote }}
{{- with .Values.config.repo }}
- name: AIMODEL_REPO
  value: {{ . | quote }}
{{- end }}
{{- with .Values.config.githubApiUrl }}
- name: GITHUB_API_URL
  value: {{ . | quote }}
{{- end }}
{{- with .Values.config.githubAppId }}
- name: GITHUB_APP_ID
  value: {{ . | quote }}
{{- end }}
{{- if .Values.redis.enabled }}
- name: REDIS_URL
  value: {{ printf "redis://%s-redis:6379/0" (include "aimodel-gitops.fullname" .) | quote }}
{{- else if .Values.externalRedis.existingSecret }}
- name: REDIS_URL
  valueFrom:
    secretKeyRef:
      name: {{ .Values.externalRedis.existingSecret }}
      key: {{ .Values.externalRedis.urlKey }}
{{- else if .Values.externalRedis.url }}
- name: REDIS_URL
  value: {{ .Values.externalRedis.url | quote }}
{{- end }}
{{- with .Values.secrets.slack }}
{{- if .existingSecret }}
- name: SLACK_SIGNING_SECRET
  valueFrom:
    secretKeyRef:
      name: {{ .existingSecret }}
      key: {{ .signingSecretKey }}
- name: SLACK_BOT_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ .existingSecret }}
      key: {{ .botTokenKey }}
{{- end }}
{{- end }}
{{- with .Values.secrets.github }}
{{- if .existingSecret }}
- name: GITHUB_WEBHOOK_SECRET
  valueFrom:
    secretKeyRef:
      name: {{ .existingSecret }}
      key: {{ .webhookSecretKey }}
{{- if .tokenKey }}
- name: GITHUB_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ .existingSecret }}
      key: {{ .tokenKey }}
{{- end }}
{{- if .appPrivateKeyKey }}
- name: GITHUB_APP_PRIVATE_KEY
  valueFrom:
    secretKeyRef:
      name: {{ .existingSecret }}
      key: {{ .appPrivateKeyKey }}
{{- end }}
{{- end }}
{{- end }}
{{- if .Values.secrets.signingKey.existingSecret }}
- name: AIMODEL_SIGNING_KEY
  value: /var/run/secrets/aimodel/{{ .Values.secrets.signingKey.key }}
{{- end }}
{{- range $name, $value := .Values.config.extraEnv }}
- name: {{ $name }}
  value: {{ $value | quote }}
{{- end }}
{{- end }}

{{- define "aimodel-gitops.volumeMounts" -}}
- name: home
  mountPath: /var/lib/aimodel
- name: tmp
  mountPath: /tmp
{{- if .Values.secrets.signingKey.existingSecret }}
- name: signing-key
  mountPath: /var/run/secrets/aimodel
  readOnly: true
{{- end }}
{{- end }}

{{- define "aimodel-gitops.volumes" -}}
- name: home
{{- if .Values.persistence.enabled }}
  persistentVolumeClaim:
    claimName: {{ include "aimodel-gitops.claimName" . }}
{{- else }}
  emptyDir: {}
{{- end }}
- name: tmp
  emptyDir: {}
{{- if .Values.secrets.signingKey.existingSecret }}
- name: signing-key
  secret:
    secretName: {{ .Values.secrets.signingKey.existingSecret }}
    defaultMode: 0440
    items:
      - key: {{ .Values.secrets.signingKey.key }}
        path: {{ .Values.secrets.signingKey.key }}
{{- end }}
{{- end }}

{{/* The web container: `web` is `aimodel serve --no-worker` (deploy/docker/entrypoint.sh). */}}
{{- define "aimodel-gitops.webContainer" -}}
- name: web
  image: {{ include "aimodel-gitops.image" . }}
  imagePullPolicy: {{ .Values.image.pullPolicy }}
  args: ["web"]
  env:
    {{- include "aimodel-gitops.env" . | nindent 4 }}
  {{- with .Values.config.extraEnvFrom }}
  envFrom:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  ports:
    - name: http
      containerPort: 3000
      protocol: TCP
  livenessProbe:
    httpGet:
      path: {{ .Values.probes.livenessPath }}
      port: http
    initialDelaySeconds: 10
    periodSeconds: 15
    timeoutSeconds: 5
    failureThreshold: 4
  readinessProbe:
    httpGet:
      path: {{ .Values.probes.readinessPath }}
      port: http
    periodSeconds: 10
    timeoutSeconds: 5
    failureThreshold: 3
  resources:
    {{- toYaml .Values.web.resources | nindent 4 }}
  securityContext:
    {{- toYaml .Values.securityContext | nindent 4 }}
  volumeMounts:
    {{- include "aimodel-gitops.volumeMounts" . | nindent 4 }}
{{- end }}

{{/* Where a worker pod of its own (on Redis) serves /metrics; "" beside the web container. */}}
{{- define "aimodel-gitops.workerMetricsPort" -}}
{{- if and .Values.metrics.enabled (include "aimodel-gitops.sharedQueue" .) }}{{ .Values.metrics.workerPort }}{{ end }}
{{- end }}

{{/* Prometheus' scrape annotations for a pod; the port is a name or a number. */}}
{{- define "aimodel-gitops.scrapeAnnotations" -}}
prometheus.io/scrape: "true"
prometheus.io/port: {{ . | quote }}
prometheus.io/path: /metrics
{{- end }}

{{/* The worker container serves no requests: a worker that dies ends its container. Its only
port is /metrics, in a worker pod of its own. */}}
{{- define "aimodel-gitops.workerContainer" -}}
{{- $metrics := include "aimodel-gitops.workerMetricsPort" . }}
- name: worker
  image: {{ include "aimodel-gitops.image" . }}
  imagePullPolicy: {{ .Values.image.pullPolicy }}
  args: ["worker"]
  env:
    {{- include "aimodel-gitops.env" . | nindent 4 }}
    {{- if $metrics }}
    - name: AIMODEL_WORKER_METRICS_PORT
      value: {{ $metrics | quote }}
    {{- end }}
  {{- with .Values.config.extraEnvFrom }}
  envFrom:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- if $metrics }}
  ports:
    - name: metrics
      containerPort: {{ $metrics }}
      protocol: TCP
  {{- end }}
  resources:
    {{- toYaml .Values.worker.resources | nindent 4 }}
  securityContext:
    {{- toYaml .Values.securityContext | nindent 4 }}
  volumeMounts:
    {{- include "aimodel-gitops.volumeMounts" . | nindent 4 }}
{{- end }}

{{- define "aimodel-gitops.initContainer" -}}
{{- if .Values.init.enabled }}
- name: init
  image: {{ include "aimodel-gitops.image" . }}
  imagePullPolicy: {{ .Values.image.pullPolicy }}
  args:
    - aimodel
    - init
    {{- range .Values.init.people }}
    - --person
    - {{ . | quote }}
    {{- end }}
  env:
    {{- include "aimodel-gitops.env" . | nindent 4 }}
  resources:
    {{- toYaml .Values.web.resources | nindent 4 }}
  securityContext:
    {{- toYaml .Values.securityContext | nindent 4 }}
  volumeMounts:
    {{- include "aimodel-gitops.volumeMounts" . | nindent 4 }}
{{- end }}
{{- end }}
