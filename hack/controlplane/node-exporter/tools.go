//go:build tools

// Package tools pins node_exporter for hack/controlplane/build.sh (go mod tidy
// keeps it): the exporter the real nodes run as an image (hack/realnode/images.sh),
// built static (Debian's is linked against glibc).
package tools

import _ "github.com/prometheus/node_exporter"
