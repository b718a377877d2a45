{{- define "qwen-vllm.name" -}}
{{- default .Release.Name .Values.name | trunc 45 | trimSuffix "-" -}}
{{- end -}}

{{- define "qwen-vllm.labels" -}}
app.kubernetes.io/name: {{ include "qwen-vllm.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: qwenops
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "qwen-vllm.storageUri" -}}
{{- if .Values.model.pvc.claimName -}}
{{- printf "pvc://%s/%s" .Values.model.pvc.claimName (.Values.model.pvc.subPath | default "") | trimSuffix "/" -}}
{{- else -}}
{{- required "model.storageUri or model.pvc.claimName is required" .Values.model.storageUri -}}
{{- end -}}
{{- end -}}
