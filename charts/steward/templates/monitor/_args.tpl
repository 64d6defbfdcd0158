{{/* The command line of `steward monitor`, in one place. */}}
{{- define "steward.monitor.stackRoles" -}}
{{- $n := include "steward.componentName" (dict "ctx" . "component" "monitor") -}}
{{- dict "prometheus" (printf "%s-prometheus" $n) "kubeStateMetrics" (printf "%s-kube-state-metrics" $n) | toJson -}}
{{- end }}

{{- define "steward.monitor.args" -}}
{{- $v := .Values.monitor -}}
{{- $roles := include "steward.monitor.stackRoles" . | fromJson -}}
- monitor
- --admin-addr=0.0.0.0:{{ $v.adminPort }}
# The CRD comes with the chart (crds/); steward needs no right to write CRDs.
- --install-crd=false
{{- if $v.leaderElection.enabled }}
- --leader-elect
- --lease-duration={{ $v.leaderElection.leaseDuration }}
{{- end }}
{{- with $v.watchNamespace }}
- --namespace={{ . }}
{{- end }}
- --poll-interval={{ $v.pollInterval }}
- --resync={{ $v.resync }}
# The stacks' Prometheus and kube-state-metrics are bound to the chart's
# ClusterRoles; steward holds `bind` on those two names, not their permissions.
- --prometheus-cluster-role={{ $roles.prometheus }}
- --kube-state-metrics-cluster-role={{ $roles.kubeStateMetrics }}
{{- with $v.extraArgs }}
{{ toYaml . }}
{{- end }}
{{- end }}
