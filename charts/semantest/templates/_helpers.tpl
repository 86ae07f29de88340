{{/*
_helpers.tpl: the named templates every other template uses. Each is prefixed with the chart
name (`semantest.`) and commented; they render nothing by themselves.
*/}}

{{/* semantest.name: the chart name, or nameOverride, cut to 63 characters (a DNS label). */}}
{{- define "semantest.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
semantest.fullname: the prefix of every object name. fullnameOverride wins; otherwise the
release name, followed by the chart name unless the release name already contains it. Cut to 63
characters because some Kubernetes name fields are limited to a DNS label.
*/}}
{{- define "semantest.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* semantest.operator.fullname: the name of the operator's Deployment, ServiceAccount and RBAC. */}}
{{- define "semantest.operator.fullname" -}}
{{- printf "%s-operator" (include "semantest.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* semantest.chart: chart name and version, for the helm.sh/chart label. */}}
{{- define "semantest.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* semantest.namespace: the namespace every namespaced object of the chart goes to. */}}
{{- define "semantest.namespace" -}}
{{- default .Release.Namespace .Values.namespaceOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* semantest.selectorLabels: the labels a selector matches; never change them on upgrade. */}}
{{- define "semantest.selectorLabels" -}}
app.kubernetes.io/name: {{ include "semantest.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* semantest.labels: the standard labels on every object, plus commonLabels. */}}
{{- define "semantest.labels" -}}
helm.sh/chart: {{ include "semantest.chart" . }}
{{ include "semantest.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: semantest
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* semantest.operator.selectorLabels: selector labels of the operator's pods. */}}
{{- define "semantest.operator.selectorLabels" -}}
{{ include "semantest.selectorLabels" . }}
app.kubernetes.io/component: operator
{{- end -}}

{{/* semantest.operator.labels: labels of every operator object (Deployment, RBAC, PDB). */}}
{{- define "semantest.operator.labels" -}}
{{ include "semantest.labels" . }}
app.kubernetes.io/component: operator
{{- end -}}

{{/* semantest.serviceAccountName: the operator's ServiceAccount, made by the chart or not. */}}
{{- define "semantest.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "semantest.operator.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* semantest.imageTag: image.tag, or the chart's appVersion when it is empty. */}}
{{- define "semantest.imageTag" -}}
{{- default .Chart.AppVersion .Values.image.tag -}}
{{- end -}}

{{/*
semantest.image: the full image reference of the hub image (operator and hub alike):
registry/repository:tag, or registry/repository@digest when image.digest is set.
*/}}
{{- define "semantest.image" -}}
{{- $repository := .Values.image.repository -}}
{{- if .Values.image.registry -}}
{{- $repository = printf "%s/%s" .Values.image.registry .Values.image.repository -}}
{{- end -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" $repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" $repository (include "semantest.imageTag" .) -}}
{{- end -}}
{{- end -}}

{{/* semantest.cluster.name: the SemantestCluster the chart creates (the CRD allows 40 characters). */}}
{{- define "semantest.cluster.name" -}}
{{- default (include "semantest.fullname" .) .Values.cluster.name | trunc 40 | trimSuffix "-" -}}
{{- end -}}

{{/*
semantest.validateValues: every cross-field rule values.schema.json cannot express, checked
at once; `fail`s with one message listing every problem.
*/}}
{{- define "semantest.validateValues" -}}
{{- $messages := list -}}
{{- $messages = append $messages (include "semantest.validateValues.peering" .) -}}
{{- $messages = append $messages (include "semantest.validateValues.cluster" .) -}}
{{- $messages = append $messages (include "semantest.validateValues.redis" .) -}}
{{- $messages = append $messages (include "semantest.validateValues.tls" .) -}}
{{- $messages = append $messages (include "semantest.validateValues.autoscaling" .) -}}
{{- $messages = without $messages "" -}}
{{- if $messages -}}
{{- printf "\nVALUES VALIDATION:\n%s" (join "\n" $messages) | fail -}}
{{- end -}}
{{- end -}}

{{/* semantest.validateValues.peering: more than one operator replica needs peering. */}}
{{- define "semantest.validateValues.peering" -}}
{{- if and (gt (int .Values.operator.replicaCount) 1) (not .Values.operator.peering.enabled) -}}
operator.replicaCount: {{ .Values.operator.replicaCount }} replicas need operator.peering.enabled=true, or they would all act on every SemantestCluster.
{{- end -}}
{{- end -}}

{{/* semantest.validateValues.cluster: the hub is created in a namespace the operator watches. */}}
{{- define "semantest.validateValues.cluster" -}}
{{- $watched := .Values.operator.watchNamespaces | default list -}}
{{- if and .Values.cluster.enabled $watched (not (has (include "semantest.namespace" .) $watched)) -}}
cluster.enabled: the SemantestCluster goes to namespace {{ include "semantest.namespace" . }}, which operator.watchNamespaces ({{ join ", " $watched }}) leaves out, so no operator would reconcile it.
{{- end -}}
{{- end -}}

{{/* semantest.validateValues.redis: exactly one Redis, managed or external. */}}
{{- define "semantest.validateValues.redis" -}}
{{- $redis := .Values.cluster.spec.redis -}}
{{- if and .Values.cluster.enabled $redis.external.url $redis.managed.enabled -}}
cluster.spec.redis: an external Redis (redis.external.url) needs cluster.spec.redis.managed.enabled=false.
{{- else if and .Values.cluster.enabled (not $redis.external.url) (not $redis.managed.enabled) -}}
cluster.spec.redis: with cluster.spec.redis.managed.enabled=false, set cluster.spec.redis.external.url.
{{- end -}}
{{- end -}}

{{/* semantest.validateValues.tls: what the certificate mode needs. */}}
{{- define "semantest.validateValues.tls" -}}
{{- $tls := .Values.cluster.spec.tls -}}
{{- if and .Values.cluster.enabled (eq $tls.mode "secret") (not $tls.secretName) -}}
cluster.spec.tls.mode: secret needs cluster.spec.tls.secretName (an existing kubernetes.io/tls Secret).
{{- else if and .Values.cluster.enabled (eq $tls.mode "certManager") (not $tls.issuerRef.name) -}}
cluster.spec.tls.mode: certManager needs cluster.spec.tls.issuerRef.name (a cert-manager Issuer or ClusterIssuer).
{{- end -}}
{{- end -}}

{{/* semantest.validateValues.autoscaling: minReplicas <= maxReplicas for each component. */}}
{{- define "semantest.validateValues.autoscaling" -}}
{{- if .Values.cluster.enabled -}}
{{- range $component := list "gateway" "router" "auth" -}}
{{- $a := (index $.Values.cluster.spec $component).autoscaling -}}
{{- if gt (int $a.minReplicas) (int $a.maxReplicas) -}}
cluster.spec.{{ $component }}.autoscaling: minReplicas ({{ $a.minReplicas }}) exceeds maxReplicas ({{ $a.maxReplicas }}).
{{ end -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/*
semantest.prune: the YAML of a map without its empty entries ("" strings, null, empty lists and
maps, recursively), so optional SemantestCluster fields left empty in values stay unset and the
CRD's defaults and rules apply to them. Booleans and numbers are always kept.
*/}}
{{- define "semantest.prune" -}}
{{- $out := dict -}}
{{- range $key, $value := . -}}
{{- if kindIs "map" $value -}}
{{- $inner := include "semantest.prune" $value | fromYaml -}}
{{- if $inner -}}
{{- $_ := set $out $key $inner -}}
{{- end -}}
{{- else if kindIs "slice" $value -}}
{{- if $value -}}
{{- $_ := set $out $key $value -}}
{{- end -}}
{{- else if kindIs "string" $value -}}
{{- if ne $value "" -}}
{{- $_ := set $out $key $value -}}
{{- end -}}
{{- else if not (kindIs "invalid" $value) -}}
{{- $_ := set $out $key $value -}}
{{- end -}}
{{- end -}}
{{- if $out -}}
{{- toYaml $out -}}
{{- end -}}
{{- end -}}

{{/*
semantest.cluster.spec: the SemantestCluster spec from `cluster.spec`: the image defaults to the
chart's own, CORS is left out unless something in it is set, empty optional fields are dropped.
*/}}
{{- define "semantest.cluster.spec" -}}
{{- $spec := deepCopy .Values.cluster.spec -}}
{{- $image := $spec.image -}}
{{- $_ := set $image "repository" (default .Values.image.repository $image.repository) -}}
{{- $_ := set $image "tag" (default (default (include "semantest.imageTag" .) .Values.image.digest) $image.tag) -}}
{{- $_ := set $image "pullPolicy" (default .Values.image.pullPolicy $image.pullPolicy) -}}
{{- $_ := set $image "pullSecrets" (default .Values.image.pullSecrets $image.pullSecrets) -}}
{{- if not $spec.tls.issuerRef.name -}}
{{- $_ := unset $spec.tls "issuerRef" -}}
{{- end -}}
{{- $cors := $spec.cors -}}
{{- if not (or $cors.origin $cors.methods $cors.allowedHeaders $cors.credentials) -}}
{{- $_ := unset $spec "cors" -}}
{{- end -}}
{{- include "semantest.prune" $spec -}}
{{- end -}}

{{/*
semantest.operator.rules: what the operator does in a namespace it serves, derived from
operator/semantest_operator/ (kopf handlers, reconcile.py, apply.py) verb by verb. kopf watches
the SemantestClusters and the children (list, watch), keeps its progress in annotations (patch)
and posts Events (create); the reconciler reads the resource (get) and writes its status, applies
children with server-side apply (patch, plus create when apply creates), creates generated
Secrets and replaces renewed certificates (create, update),
reads Deployments before handing over replicas (get), and prunes children the spec no longer
implies (delete). The hourly certificate timer makes kopf record its runs in the annotations of
the TLS Secrets (patch); Secrets are never deleted.
*/}}
{{- define "semantest.operator.rules" -}}
- apiGroups: ["semantest.io"]
  resources: ["semantestclusters"]
  verbs: ["get", "list", "watch", "patch"]
- apiGroups: ["semantest.io"]
  resources: ["semantestclusters/status"]
  verbs: ["patch"]
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create"]
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get", "list", "watch", "create", "update", "patch"]
- apiGroups: [""]
  resources: ["configmaps"]
  verbs: ["list", "watch", "create", "patch"]
- apiGroups: [""]
  resources: ["services"]
  verbs: ["list", "watch", "create", "patch", "delete"]
- apiGroups: ["apps"]
  resources: ["deployments"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: ["apps"]
  resources: ["deployments/scale"]
  verbs: ["patch"]
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["list", "patch"]
- apiGroups: ["apps"]
  resources: ["statefulsets"]
  verbs: ["list", "watch", "create", "patch", "delete"]
- apiGroups: ["autoscaling"]
  resources: ["horizontalpodautoscalers"]
  verbs: ["list", "watch", "create", "patch", "delete"]
- apiGroups: ["policy"]
  resources: ["poddisruptionbudgets"]
  verbs: ["list", "watch", "create", "patch", "delete"]
- apiGroups: ["cert-manager.io"]
  resources: ["certificates"]
  verbs: ["list", "watch", "create", "patch", "delete"]
{{- end -}}

{{/*
semantest.operator.peeringRules: the kopf peering object the replicas share: the init container
creates it (create), kopf watches it (list, watch) and writes its keep-alives (patch).
*/}}
{{- define "semantest.operator.peeringRules" -}}
{{- if .Values.operator.peering.enabled }}
- apiGroups: ["kopf.dev"]
  resources: [{{ if .Values.operator.watchNamespaces }}"kopfpeerings"{{ else }}"clusterkopfpeerings"{{ end }}]
  verbs: ["list", "watch", "create", "patch"]
{{- end }}
{{- end -}}

{{/* semantest.operator.args: the `semantest-operator` command line (operator/semantest_operator/main.py). */}}
{{- define "semantest.operator.args" -}}
- --log-format={{ .Values.operator.logFormat }}
{{- if .Values.operator.verbose }}
- --verbose
{{- end }}
{{- range .Values.operator.watchNamespaces }}
- --namespace={{ . }}
{{- end }}
{{- if .Values.operator.peering.enabled }}
- --peering={{ .Values.operator.peering.name }}
{{- else }}
- --standalone
{{- end }}
- --liveness=http://0.0.0.0:{{ .Values.operator.healthPort }}/healthz
{{- range .Values.operator.extraArgs }}
- {{ . | quote }}
{{- end }}
{{- end -}}

{{/*
semantest.operator.peeringScript: the init container's program. kopf needs the peering object
to exist before the replicas can agree who acts; creating it here, at run time, keeps every
custom resource out of the install (so `kubectl apply` of the CRDs and the operator works in one
go). Existing objects are left alone. Arguments: the peering name, then the served namespaces
(none: cluster-wide).
*/}}
{{- define "semantest.operator.peeringScript" -}}
"""Create the kopf peering object(s) the operator replicas share, unless they exist."""
import sys
from kubernetes import client, config
try:
    config.load_incluster_config()
except config.ConfigException:
    config.load_kube_config()
api = client.CustomObjectsApi()
name, namespaces = sys.argv[1], sys.argv[2:]
targets = [("KopfPeering", "kopfpeerings", ns) for ns in namespaces] or [
    ("ClusterKopfPeering", "clusterkopfpeerings", None)]
for kind, plural, namespace in targets:
    body = {"apiVersion": "kopf.dev/v1", "kind": kind, "metadata": {"name": name}}
    where = f" in namespace {namespace}" if namespace else ""
    try:
        if namespace:
            api.create_namespaced_custom_object("kopf.dev", "v1", namespace, plural, body)
        else:
            api.create_cluster_custom_object("kopf.dev", "v1", plural, body)
        print(f"created {kind} {name}{where}")
    except client.ApiException as e:
        if e.status != 409:
            raise
        print(f"{kind} {name}{where} exists")
{{- end -}}
