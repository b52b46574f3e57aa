{{- /* Labels on every object of the facility's own templates. */}}
{{- define "facility.labels" -}}
app.kubernetes.io/name: {{ include "facility.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end }}
