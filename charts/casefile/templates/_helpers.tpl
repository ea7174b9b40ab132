{{/*
casefile runs in casefile-system: its admission policies, its CRDs' messages and its RBAC bindings name
that namespace, so the chart refuses any other rather than install something that half works.
*/}}
{{- define "casefile.checkNamespace" -}}
{{- if ne .Release.Namespace "casefile-system" -}}
{{- fail (printf "casefile installs only into namespace casefile-system (its admission policies and RBAC name it), not %q: kubectl create namespace casefile-system && kubectl label namespace casefile-system pod-security.kubernetes.io/enforce=restricted && helm install %s charts/casefile -n casefile-system" .Release.Namespace .Release.Name) -}}
{{- end -}}
{{- end -}}

{{/* Files of config/ verbatim, each its own YAML document: the chart and kustomize share one source. */}}
{{- define "casefile.configFiles" -}}
{{- $root := index . 0 -}}
{{- range $path := index . 1 }}
---
{{ $root.Files.Get (printf "config/%s" $path) | trim }}
{{- end }}
{{- end -}}
