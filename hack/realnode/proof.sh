#!/usr/bin/env bash
# The prototype end to end: a simulated cluster whose API server sits on a host
# bridge, two real nodes, and the checks of issue 15's feasibility step. Prints the
# timings; exits non-zero at the first check that fails. Cleans up on exit.
# Usage: hack/realnode/proof.sh [STEWARD_BIN]   (root; after hack/setup.sh)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
steward=${1:-$here/../../target/debug/steward}
. "$here/lib.sh"

# 1. A Job from the busybox image: echo hello, Complete, kubectl logs.
t=$(now)
k create job hello --image=steward.local/busybox:1 -- sh -c 'echo hello' >/dev/null
k wait --for=condition=Complete job/hello --timeout=60s >/dev/null
echo "job: created to Complete $(since "$t")s"
[ "$(k logs job/hello)" = hello ] || fail "kubectl logs job/hello: $(k logs job/hello)"
echo "ok: kubectl logs job/hello = hello"

# 2. Pod IPs and a Service's ClusterIP (kube-proxy, iptables) from a node's netns.
k apply -f - >/dev/null <<'YAML'
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      terminationGracePeriodSeconds: 5
      topologySpreadConstraints: [{maxSkew: 1, topologyKey: kubernetes.io/hostname, whenUnsatisfiable: DoNotSchedule, labelSelector: {matchLabels: {app: web}}}]
      securityContext: {runAsNonRoot: true, runAsUser: 65534, seccompProfile: {type: RuntimeDefault}}
      containers:
      - name: web
        image: steward.local/busybox:1
        command: ["sh", "-c", "echo $HOSTNAME > /tmp/index.html; exec httpd -f -p 8080 -h /tmp"]
        ports: [{containerPort: 8080}]
        readinessProbe: {httpGet: {path: /index.html, port: 8080}, periodSeconds: 1}
        securityContext: {allowPrivilegeEscalation: false, capabilities: {drop: [ALL]}}
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}]
YAML
t=$(now)
k rollout status deploy/web --timeout=60s >/dev/null
echo "deployment web (2 pods, one per node): created to available $(since "$t")s"
for pod in $(k get pods -l app=web -o name); do
  ip=$(k get "$pod" -o jsonpath='{.status.podIP}')
  [ "$(nsx 1 timeout 2 wget -qO- "http://$ip:8080/index.html")" = "${pod#pod/}" ] || fail "pod IP $ip from node 1's netns"
done
echo "ok: both pod IPs answer from real-node-1's netns (one pod is on real-node-2)"
svc=$(k get svc web -o jsonpath='{.spec.clusterIP}')
seen() { nsx 1 timeout 2 wget -qO- "http://$svc/index.html" >>"$sim/seen"; [ "$(sort -u "$sim/seen" | wc -l)" = 2 ]; }
until_ok 30 "ClusterIP $svc reaching both pods" seen
echo "ok: ClusterIP $svc from real-node-1's netns reached both pods"

# 3. The API server calls a webhook served by a pod, through its Service.
tls=$sim/webhook-tls; mkdir -p "$tls"
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$tls/tls.key" \
  -subj /CN=webhook.default.svc -out "$tls/csr" 2>/dev/null
openssl x509 -req -in "$tls/csr" -CA "$sim/pki/ca.crt" -CAkey "$sim/pki/ca.key" -CAcreateserial -days 1 \
  -out "$tls/tls.crt" -extfile <(printf 'subjectAltName=DNS:webhook.default.svc\n') 2>/dev/null
k create secret tls webhook-tls --cert="$tls/tls.crt" --key="$tls/tls.key" >/dev/null
k apply -f - >/dev/null <<YAML
apiVersion: apps/v1
kind: Deployment
metadata: {name: webhook}
spec:
  selector: {matchLabels: {app: webhook}}
  template:
    metadata: {labels: {app: webhook}}
    spec:
      securityContext: {runAsNonRoot: true, runAsUser: 65534, seccompProfile: {type: RuntimeDefault}}
      volumes: [{name: tls, secret: {secretName: webhook-tls}}]
      containers:
      - name: webhook
        image: steward.local/webhook:1
        volumeMounts: [{name: tls, mountPath: /tls}]
        readinessProbe: {tcpSocket: {port: 8443}, periodSeconds: 1}
        securityContext: {allowPrivilegeEscalation: false, capabilities: {drop: [ALL]}}
---
apiVersion: v1
kind: Service
metadata: {name: webhook}
spec:
  selector: {app: webhook}
  ports: [{port: 443, targetPort: 8443}]
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingWebhookConfiguration
metadata: {name: realnode-proof}
webhooks:
- name: proof.steward.io
  admissionReviewVersions: [v1]
  sideEffects: None
  failurePolicy: Fail
  timeoutSeconds: 5
  objectSelector: {matchLabels: {realnode-proof: "true"}}
  rules: [{apiGroups: [""], apiVersions: [v1], operations: [CREATE], resources: [configmaps]}]
  clientConfig:
    caBundle: $(base64 -w0 "$sim/pki/ca.crt")
    service: {namespace: default, name: webhook, path: /validate, port: 443}
YAML
k rollout status deploy/webhook --timeout=60s >/dev/null
whsvc=$(k get svc webhook -o jsonpath='{.spec.clusterIP}')
cm() { k create -f - 2>&1 <<YAML
apiVersion: v1
kind: ConfigMap
metadata: {name: probe-$1, labels: {realnode-proof: "true"}}
YAML
}
out=$(cm 1)
grep -q "seen by the real-node webhook pod" <<<"$out" || fail "webhook not called: $out"
# Which path: the host routes the Service range to real-node-1, whose kube-proxy DNATs.
nsx 1 conntrack -L -d "$whsvc" 2>/dev/null | grep -q "src=10.$n.0.1 dst=$whsvc" \
  || fail "no conntrack entry API server -> ClusterIP $whsvc in real-node-1's netns"
# ...and only that path: without the host's route to the Service range the call fails.
ip route del "10.$n.64.0/20"
out=$(cm 2) && { ip route add "10.$n.64.0/20" via "10.$n.0.11"; fail "webhook answered without the Service route: $out"; }
ip route add "10.$n.64.0/20" via "10.$n.0.11"
echo "ok: API server -> webhook Service ClusterIP $whsvc -> kube-proxy (real-node-1) -> pod"
echo "    (without the route: $(grep -o 'failed calling webhook.*' <<<"$out" | cut -c1-150))"

# 4. SIGTERM reaches the container on delete; its handler runs within the grace period.
mkdir -p "$sim/term"
k apply -f - >/dev/null <<YAML
apiVersion: v1
kind: Pod
metadata: {name: term}
spec:
  terminationGracePeriodSeconds: 20
  volumes: [{name: out, hostPath: {path: $sim/term, type: Directory}}]
  containers:
  - name: c
    image: steward.local/busybox:1
    command: ["sh", "-c", "trap 'echo SIGTERM >> /out/log; sleep 1; echo exiting >> /out/log; exit 0' TERM; echo started >> /out/log; while true; do sleep 0.1; done"]
    volumeMounts: [{name: out, mountPath: /out}]
YAML
k wait --for=condition=Ready pod/term --timeout=60s >/dev/null
t=$(now)
k delete pod term --wait=true >/dev/null
[ "$(tr '\n' ' ' <"$sim/term/log")" = "started SIGTERM exiting " ] || fail "term log: $(cat "$sim/term/log")"
echo "ok: SIGTERM delivered, handler ran, pod gone after $(since "$t")s"

# 5. An image that was not imported: ErrImageNeverPull, never a pull.
k run other --image=registry.k8s.io/pause:3.10 >/dev/null
never() { [ "$(k get pod other -o jsonpath='{.status.containerStatuses[0].state.waiting.reason}')" = ErrImageNeverPull ]; }
until_ok 30 "pod other waiting with ErrImageNeverPull" never
echo "ok: $(k get pod other -o jsonpath='{.status.containerStatuses[0].state.waiting.message}')"

# 6. kubectl logs -f follows a running container (the kubelet's log path).
k run ticker --image=steward.local/busybox:1 -- sh -c 'i=0; while true; do i=$((i+1)); echo line $i; sleep 0.2; done' >/dev/null
k wait --for=condition=Ready pod/ticker --timeout=60s >/dev/null
# (kubectl is cut off by head's exit: its status is not the check, the lines are)
got=$({ timeout 10 "$STEWARD_CONTROLPLANE_BIN/kubectl" logs -f ticker || true; } | head -5 | tr '\n' ' ')
[ "$got" = "line 1 line 2 line 3 line 4 line 5 " ] || fail "kubectl logs -f ticker: $got"
echo "ok: kubectl logs -f ticker: $got"
echo "all checks passed (node logs: $sim.logs)"
