{{/* The command line of `steward monitor`, in one place. */}}
{{- define "steward.monitor.args" -}}
{{- $v := .Values.monitor -}}
- monitor
- --admin-addr=0.0.0.0:{{ $v.adminPort }}
# The CRD comes with the chart (crds/); steward needs no right to write CRDs.
- --install-crd=false
{{- if $v.leaderElection.enabled }}
- --leader-elect
- --lease-name={{ include "steward.componentName" (dict "ctx" . "component" "monitor") }}
- --lease-duration={{ $v.leaderElection.leaseDuration }}
{{- end }}
{{- with $v.watchNamespace }}
- --namespace={{ . }}
{{- end }}
- --poll-interval={{ $v.pollInterval }}
- --resync={{ $v.resync }}
{{- range $v.helmCharts }}
- --helm-chart={{ . }}
{{- end }}
{{- with $v.extraArgs }}
{{ toYaml . }}
{{- end }}
{{- end }}
