{{/* The command line of `steward drain`, and the pod both the CronJob and the
one-off Job run, in one place. */}}
{{- define "steward.drain.args" -}}
{{- $v := .Values.drain -}}
- drain
- --output=json
- --metrics-addr=0.0.0.0:{{ $v.metricsPort }}
- --min-batch={{ $v.minBatch }}
{{- if gt (int $v.maxBatch) 0 }}
- --max-batch={{ $v.maxBatch }}
{{- end }}
{{- if gt (int $v.parallelNodes) 0 }}
- --parallel-nodes={{ $v.parallelNodes }}
{{- end }}
- --node-concurrency={{ $v.nodeConcurrency }}
- --max-concurrency={{ $v.maxConcurrency }}
- --timeout={{ $v.timeout }}
- --problem-pod-grace={{ $v.problemPodGrace }}
{{- if $v.waitForReplacements }}
- --wait-for-replacements
- --replacement-timeout={{ $v.replacementTimeout }}
{{- end }}
{{- if $v.force }}
- --force
{{- end }}
{{- if not $v.surge }}
- --no-surge
{{- end }}
{{- if $v.keepNodes }}
- --keep-nodes
{{- end }}
{{- if $v.deleteNodes }}
- --delete-nodes
{{- end }}
- --handoff-timeout={{ $v.handoffTimeout }}
- --lock-namespace={{ $v.lock.namespace }}
- --lock-duration={{ $v.lock.durationSeconds }}
{{- if $v.lock.wait }}
- --wait-for-lock
{{- end }}
{{- with $v.extraArgs }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "steward.drain.jobSpec" -}}
{{- $v := .Values.drain -}}
# A drain resumes what an interrupted one left (cordoned nodes, the drain-state
# annotation); it is not retried blindly.
backoffLimit: 0
activeDeadlineSeconds: {{ $v.activeDeadlineSeconds }}
template:
  metadata:
    labels:
      {{- include "steward.labels" (dict "ctx" . "component" "drain") | nindent 6 }}
    {{- with $v.podAnnotations }}
    annotations:
      {{- toYaml . | nindent 6 }}
    {{- end }}
  spec:
    serviceAccountName: {{ include "steward.componentName" (dict "ctx" . "component" "drain") }}
    restartPolicy: Never
    {{- include "steward.podSpec" (dict "ctx" . "values" $v) | nindent 4 }}
    containers:
      - name: steward
        image: {{ include "steward.image" . }}
        imagePullPolicy: {{ .Values.image.pullPolicy }}
        args:
          {{- include "steward.drain.args" . | nindent 10 }}
        env:
          {{- include "steward.env" . | nindent 10 }}
          - name: NODEPOOL_NAME
            value: {{ $v.nodepoolName | quote }}
          - name: CLUSTER_NAME
            value: {{ $v.clusterName | quote }}
          - name: PROMETHEUS_ADDRESS
            value: {{ $v.prometheus.address | quote }}
          {{- with $v.prometheus.orgId }}
          - name: PROMETHEUS_SCOPE_ORG_ID
            value: {{ . | quote }}
          {{- end }}
          {{- include "steward.drain.prometheusEnv" . | nindent 10 }}
          {{- with $v.slack.existingSecret }}
          # The Slack URL is a credential: from the Secret, never a flag.
          - name: SLACK_WEBHOOK_URL
            valueFrom:
              secretKeyRef:
                name: {{ . }}
                key: {{ $v.slack.key }}
          {{- end }}
        ports:
          - name: admin
            containerPort: {{ $v.metricsPort }}
            protocol: TCP
        resources:
          {{- toYaml $v.resources | nindent 10 }}
        securityContext:
          {{- toYaml .Values.securityContext | nindent 10 }}
        {{- include "steward.drain.prometheusMounts" . | nindent 8 }}
    {{- include "steward.drain.prometheusVolumes" . | nindent 4 }}
{{- end }}

{{/* How the drain reaches Prometheus beyond its address: the selector, headers,
and credentials as files from Secrets (never in args or env values). */}}
{{- define "steward.drain.prometheusEnv" -}}
{{- $p := .Values.drain.prometheus -}}
- name: CAPACITY_METRIC
  value: {{ $p.capacityMetric | default "allocatable" | quote }}
{{- with $p.selector }}
- name: PROMETHEUS_SELECTOR
  value: {{ . | quote }}
{{- end }}
{{- with $p.headers }}
- name: PROMETHEUS_HEADERS
  value: {{ $lines := list }}{{ range $k, $val := . }}{{ $lines = append $lines (printf "%s: %s" $k $val) }}{{ end }}{{ join "\n" $lines | quote }}
{{- end }}
{{- if $p.auth.existingSecret }}
{{- if and (not $p.auth.tokenKey) (not $p.auth.username) }}
{{- fail "drain.prometheus.auth.existingSecret is set: set drain.prometheus.auth.tokenKey (bearer token) or drain.prometheus.auth.username (basic auth)" }}
{{- end }}
{{- if $p.auth.tokenKey }}
- name: PROMETHEUS_TOKEN_FILE
  value: /etc/steward/prometheus-auth/{{ $p.auth.tokenKey }}
{{- else if $p.auth.username }}
- name: PROMETHEUS_USERNAME
  value: {{ $p.auth.username | quote }}
- name: PROMETHEUS_PASSWORD_FILE
  value: /etc/steward/prometheus-auth/{{ $p.auth.passwordKey }}
{{- end }}
{{- end }}
{{- if $p.sigv4.enabled }}
{{- if $p.auth.existingSecret }}
{{- fail "drain.prometheus.sigv4.enabled and drain.prometheus.auth.existingSecret: choose one way to authenticate" }}
{{- end }}
- name: PROMETHEUS_SIGV4
  value: "true"
{{- with $p.sigv4.region }}
- name: PROMETHEUS_SIGV4_REGION
  value: {{ . | quote }}
{{- end }}
{{- end }}
{{- if $p.tls.existingSecret }}
- name: PROMETHEUS_CA_FILE
  value: /etc/steward/prometheus-tls/ca.crt
{{- if $p.tls.clientCert }}
- name: PROMETHEUS_CERT_FILE
  value: /etc/steward/prometheus-tls/tls.crt
- name: PROMETHEUS_KEY_FILE
  value: /etc/steward/prometheus-tls/tls.key
{{- end }}
{{- end }}
{{- end }}

{{- define "steward.drain.prometheusMounts" -}}
{{- $p := .Values.drain.prometheus -}}
{{- if or $p.auth.existingSecret $p.tls.existingSecret }}
volumeMounts:
  {{- if $p.auth.existingSecret }}
  - name: prometheus-auth
    mountPath: /etc/steward/prometheus-auth
    readOnly: true
  {{- end }}
  {{- if $p.tls.existingSecret }}
  - name: prometheus-tls
    mountPath: /etc/steward/prometheus-tls
    readOnly: true
  {{- end }}
{{- end }}
{{- end }}

{{- define "steward.drain.prometheusVolumes" -}}
{{- $p := .Values.drain.prometheus -}}
{{- if or $p.auth.existingSecret $p.tls.existingSecret }}
volumes:
  {{- with $p.auth.existingSecret }}
  - name: prometheus-auth
    secret:
      secretName: {{ . }}
      defaultMode: 0400
  {{- end }}
  {{- with $p.tls.existingSecret }}
  - name: prometheus-tls
    secret:
      secretName: {{ . }}
      defaultMode: 0400
  {{- end }}
{{- end }}
{{- end }}
