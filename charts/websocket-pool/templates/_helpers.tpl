{{- define "websocket-pool.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "websocket-pool.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "websocket-pool.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "websocket-pool.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "websocket-pool.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/* What the operator may do with the objects of a pool, in a Role or a ClusterRole. */}}
{{- define "websocket-pool.poolRules" -}}
- apiGroups: [realtime.acc.io]
  resources: [websocketpools]
  verbs: [get, list, watch, patch]
- apiGroups: [realtime.acc.io]
  resources: [websocketpools/status]
  verbs: [get, patch]
- apiGroups: [realtime.acc.io]
  # ownerReferences with blockOwnerDeletion (OwnerReferencesPermissionEnforcement)
  resources: [websocketpools/finalizers]
  verbs: [update]
- apiGroups: [apps]
  resources: [deployments]
  verbs: [get, create, patch]
- apiGroups: [""]
  resources: [services, configmaps]
  verbs: [get, create, patch]
- apiGroups: [policy]
  resources: [poddisruptionbudgets]
  verbs: [get, create, patch]
- apiGroups: [""]
  # pod-deletion-cost before a scale-down, so the least-loaded node goes
  resources: [pods]
  verbs: [list, patch]
- apiGroups: [""]
  # a pool's Redis URL may live in a Secret; read by name, never listed
  resources: [secrets]
  verbs: [get]
- apiGroups: ["", events.k8s.io]
  resources: [events]
  verbs: [create, patch]
{{- end -}}
