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

{{- /* The ClusterRoles bound inside users' namespaces (hub_config.tenancy.cluster_role). */}}
{{- define "facility.clusterRole" -}}
analysis-facility:{{ .root.Release.Namespace }}:{{ .what }}
{{- end }}

{{- /* Users' namespaces: <facility namespace>-u-<user> (hub_config.tenancy.tenant_namespace). */}}
{{- define "facility.tenantPrefix" -}}
{{ .Release.Namespace }}-u-
{{- end }}

{{- define "facility.operatorServiceAccount" -}}
{{ index .Values "dask-kubernetes-operator" "fullnameOverride" }}
{{- end }}

{{- /* Dask's TLS settings in users' pods (analysis_kernels.dask_tls.tls_environment). */}}
{{- define "facility.daskTLSEnvironment" -}}
{{- $cert := "/var/run/secrets/facility-dask/tls.crt" }}
{{- $key := "/var/run/secrets/facility-dask/tls.key" }}
DASK_DISTRIBUTED__COMM__REQUIRE_ENCRYPTION: "True"
DASK_DISTRIBUTED__COMM__TLS__CA_FILE: {{ $cert }}
{{- range $role := list "SCHEDULER" "WORKER" "CLIENT" }}
DASK_DISTRIBUTED__COMM__TLS__{{ $role }}__CERT: {{ $cert }}
DASK_DISTRIBUTED__COMM__TLS__{{ $role }}__KEY: {{ $key }}
{{- end }}
{{- end }}
