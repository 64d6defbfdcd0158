//go:build tools

// Package tools pins Prometheus for hack/controlplane/build.sh (go mod tidy keeps
// it): the server the real nodes run as an image (hack/realnode/images.sh). Debian's
// is built without Kubernetes service discovery and linked against glibc; this one
// has every discovery and is static.
package tools

import _ "github.com/prometheus/prometheus/cmd/prometheus"
