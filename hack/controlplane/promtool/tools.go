//go:build tools

// Package tools pins promtool for hack/controlplane/build.sh (go mod tidy keeps it).
// Debian's promtool is built without Kubernetes service discovery, so it cannot
// check the configuration steward generates; this one can.
package tools

import _ "github.com/prometheus/prometheus/cmd/promtool"
