{{/*
Names, labels and the pieces every component's pod shares. Each component's
command line lives in its own templates/<component>/_args.tpl.
*/}}

{{- define "steward.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The prefix of every object name. */}}
{{- define "steward.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* Name of a component's objects: (dict "ctx" $ "component" "graceful-drain"). */}}
{{- define "steward.componentName" -}}
{{- printf "%s-%s" (include "steward.fullname" .ctx) .component }}
{{- end }}

{{/* Labels of every object of a component. */}}
{{- define "steward.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .ctx.Chart.Name .ctx.Chart.Version | replace "+" "_" }}
{{ include "steward.selectorLabels" . }}
app.kubernetes.io/version: {{ .ctx.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
app.kubernetes.io/part-of: steward
{{- with .ctx.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Labels that select a component's pods. */}}
{{- define "steward.selectorLabels" -}}
app.kubernetes.io/name: {{ include "steward.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "steward.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag }}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository $tag }}
{{- end }}
{{- end }}

{{/* Environment every steward container gets: logging, language, and the
downward API (namespace and pod name: Lease namespace and identity). */}}
{{- define "steward.env" -}}
- name: STEWARD_LOG_FORMAT
  value: {{ .Values.logFormat | quote }}
- name: RUST_LOG
  value: {{ .Values.logLevel | quote }}
- name: STEWARD_LANG
  value: {{ .Values.lang | quote }}
- name: KUBE_CONFIG
  value: cluster
- name: POD_NAMESPACE
  valueFrom:
    fieldRef:
      fieldPath: metadata.namespace
- name: POD_NAME
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
{{- end }}

{{/* Pod-level fields shared by every restricted pod. */}}
{{- define "steward.podSpec" -}}
{{- with .ctx.Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  {{- toYaml .ctx.Values.podSecurityContext | nindent 2 }}
{{- with .values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .values.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
{{- end }}

{{/* Whether the Prometheus Operator objects are rendered: (dict "ctx" $ "enabled" value). */}}
{{- define "steward.operatorObjects" -}}
{{- $e := .enabled }}
{{- if eq (toString $e) "auto" }}
{{- if .ctx.Capabilities.APIVersions.Has "monitoring.coreos.com/v1" }}true{{ end }}
{{- else if eq (toString $e) "true" }}true
{{- end }}
{{- end }}

{{/* The admin port's probes. */}}
{{- define "steward.probes" -}}
readinessProbe:
  httpGet:
    path: /readyz
    port: admin
  periodSeconds: 5
livenessProbe:
  httpGet:
    path: /healthz
    port: admin
  periodSeconds: 20
{{- end }}

{{/* Egress to DNS and the API server, shared by every NetworkPolicy. */}}
{{- define "steward.egressBase" -}}
- ports:
    - {protocol: UDP, port: 53}
    - {protocol: TCP, port: 53}
{{- with .apiServer }}
{{- if .cidr }}
- to:
    - ipBlock:
        cidr: {{ .cidr }}
  ports:
    - {protocol: TCP, port: {{ .port | default 443 }}}
{{- end }}
{{- else }}
- ports:
    - {protocol: TCP, port: 443}
    - {protocol: TCP, port: 6443}
{{- end }}
{{- end }}

{{/* Fails unless Secret .name in .ns has .dataKey; .key is the value naming it. */}}
{{- define "steward.requireSecret" -}}
{{- $s := lookup "v1" "Secret" .ns .name -}}
{{- if not $s -}}
{{- fail (printf "%s: Secret %q not found in namespace %q (create it first, with the key %q)" .key .name .ns .dataKey) -}}
{{- end -}}
{{- if not (hasKey ($s.data | default dict) .dataKey) -}}
{{- fail (printf "%s: Secret %q in namespace %q has no key %q" .key .name .ns .dataKey) -}}
{{- end -}}
{{- end -}}
