//go:build tools

// Package tools pins krew for hack/controlplane/build.sh (go mod tidy keeps it):
// `kubectl krew install --manifest --archive` checks the plugin manifest and archive
// hack/release.sh writes.
package tools

import _ "sigs.k8s.io/krew/cmd/krew"
