{{/* The command line of `steward ottoscaler serve`, in one place. */}}
{{- define "steward.ottoscaler.workerNamespace" -}}
{{- default .Release.Namespace .Values.ottoscaler.workerNamespace -}}
{{- end }}

{{- define "steward.ottoscaler.tokenSecret" -}}
{{- default (printf "%s-token" (include "steward.componentName" (dict "ctx" . "component" "ottoscaler"))) .Values.ottoscaler.token.existingSecret -}}
{{- end }}

{{- define "steward.ottoscaler.args" -}}
{{- $v := .Values.ottoscaler -}}
- ottoscaler
- serve
- --listen=0.0.0.0:{{ $v.port }}
- --admin-addr=0.0.0.0:{{ $v.adminPort }}
- --backend=kubernetes
- --namespace={{ include "steward.ottoscaler.workerNamespace" . }}
# The bearer token is read from the mounted Secret, never from the command line.
- --token-file=/var/run/steward/token/{{ $v.token.key }}
{{- if $v.workerClasses }}
- --config=/etc/steward/ottoscaler/workers.yaml
{{- end }}
- --max-workers={{ $v.maxWorkers }}
- --capacity-check={{ $v.capacityCheck }}
- --grace-period={{ $v.gracePeriod }}
- --retention={{ $v.retention }}
- --log-lines={{ $v.logLines }}
- --orphan-interval={{ $v.orphanInterval }}
- --leader-elect
- --lease-name={{ include "steward.componentName" (dict "ctx" . "component" "ottoscaler") }}
- --lease-duration={{ $v.leaseDuration }}
{{- range $v.notify.urls }}
- --notify-url={{ . }}
{{- end }}
{{- if $v.notify.urls }}
- --notify-secret-file=/var/run/steward/notify/{{ $v.notify.key }}
{{- end }}
{{- if $v.teams.existingSecret }}
- --teams-file=/var/run/steward/teams/{{ $v.teams.key }}
{{- end }}
{{- if $v.auditLog }}
# Audit lines on stdout; the process's own logs are on stderr.
- --audit-log=-
{{- end }}
{{- if $v.reflection }}
- --reflection
{{- end }}
{{- if $v.tls.existingSecret }}
- --tls-cert=/var/run/steward/tls/tls.crt
- --tls-key=/var/run/steward/tls/tls.key
{{- if $v.tls.clientCA }}
- --tls-client-ca=/var/run/steward/tls/ca.crt
{{- end }}
{{- end }}
{{- with $v.extraArgs }}
{{ toYaml . }}
{{- end }}
{{- end }}
