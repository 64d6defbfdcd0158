{{/* The command line of `steward graceful-drain agent`, in one place. */}}
{{- define "steward.agent.args" -}}
- graceful-drain
- agent
- --listen=0.0.0.0:{{ .Values.gracefulDrain.agent.port }}
{{- end }}
