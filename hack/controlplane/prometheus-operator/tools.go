//go:build tools

// Package tools pins prometheus-operator for hack/controlplane/build.sh (go mod tidy keeps it).
// The real operator checks that the ServiceMonitor and PrometheusRule objects steward
// monitor writes are accepted by its CRDs and selected by an operator-managed Prometheus.
package tools

import _ "github.com/prometheus-operator/prometheus-operator/cmd/operator"
