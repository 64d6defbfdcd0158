{{/* The command line of `steward graceful-drain run`, in one place. */}}
{{- define "steward.gracefulDrain.names" -}}
{{- $n := include "steward.componentName" (dict "ctx" . "component" "graceful-drain") -}}
{{- dict "base" $n "lease" $n "configMap" $n "webhook" $n "service" $n "tls" (printf "%s-tls" $n) | toJson -}}
{{- end }}

{{- define "steward.gracefulDrain.args" -}}
{{- $v := .Values.gracefulDrain -}}
{{- $n := include "steward.gracefulDrain.names" . | fromJson -}}
- graceful-drain
- run
- --admin-addr=0.0.0.0:{{ $v.adminPort }}
- --lease-name={{ $n.lease }}
- --lease-duration={{ $v.leaderElection.leaseDuration }}
- --config-map={{ $n.configMap }}
- --webhook-addr=0.0.0.0:{{ $v.webhook.port }}
- --webhook-name={{ $n.webhook }}
- --webhook-service={{ $n.service }}
- --webhook-timeout={{ $v.webhook.timeoutSeconds }}
- --webhook-config=ca-bundle
{{- range $k, $val := $v.webhook.namespaceLabels }}
- --webhook-namespace-label={{ $k }}={{ $val }}
{{- end }}
{{- with $v.watchNamespace }}
- --watch-namespace={{ . }}
{{- end }}
{{- range $v.webhook.excludeNamespaces }}
- --exclude-namespace={{ . }}
{{- end }}
- --tls-secret={{ $n.tls }}
{{- if .Values.certManager.enabled }}
- --tls-source=secret
{{- else }}
- --tls-source=self
- --cert-validity={{ $v.certValidity }}
{{- end }}
- --list-page-size={{ $v.listPageSize }}
- --restore-backoff={{ $v.restoreBackoff }}
{{- with $v.extraArgs }}
{{ toYaml . }}
{{- end }}
{{- end }}
