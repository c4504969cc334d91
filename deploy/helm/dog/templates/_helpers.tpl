{{/* The release's object name: the release name, unless it already contains the chart's. */}}
{{- define "dog.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 52 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 52 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "dog.headless" -}}
{{- printf "%s-headless" (include "dog.fullname" .) -}}
{{- end -}}

{{- define "dog.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "dog.labels" -}}
{{ include "dog.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* The Secret holding the cluster key file. */}}
{{- define "dog.keySecret" -}}
{{- if .Values.clusterKey.existingSecret -}}
{{- .Values.clusterKey.existingSecret -}}
{{- else if .Values.clusterKey.keys -}}
{{- printf "%s-cluster-key" (include "dog.fullname" .) -}}
{{- else -}}
{{- fail "clusterKey.existingSecret or clusterKey.keys is required (make a key with: dog-chat keygen)" -}}
{{- end -}}
{{- end -}}

{{/* DOG_JOIN: the first `seeds` pods by their stable DNS names. */}}
{{- define "dog.seeds" -}}
{{- $full := include "dog.fullname" . -}}
{{- $headless := include "dog.headless" . -}}
{{- $port := .Values.ports.cluster -}}
{{- $seeds := list -}}
{{- range $i := until (int (min .Values.seeds .Values.replicas)) -}}
{{- $seeds = append $seeds (printf "%s-%d.%s:%v" $full $i $headless $port) -}}
{{- end -}}
{{- join "," $seeds -}}
{{- end -}}
