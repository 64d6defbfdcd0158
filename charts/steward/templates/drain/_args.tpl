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
{{- end }}
