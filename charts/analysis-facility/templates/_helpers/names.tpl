{{- /* Names of the facility's objects, and of the z2jh objects they refer to. */}}

{{- define "facility.name" -}}
analysis-facility
{{- end }}

{{- /* z2jh's prefix: its fullnameOverride ("" by default: no prefix). */}}
{{- define "facility.z2jhPrefix" -}}
{{- $override := .Values.jupyterhub.fullnameOverride | default "" -}}
{{- if $override }}{{ $override }}-{{ end -}}
{{- end }}

{{- define "facility.hubServiceAccount" -}}
{{ include "facility.z2jhPrefix" . }}hub
{{- end }}

{{- define "facility.iamSecret" -}}
{{ .Values.iam.existingSecret | default "analysis-facility-iam" }}
{{- end }}
