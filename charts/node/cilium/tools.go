//go:build tools

// Cilium's agent and CNI plugin, the node's NetworkPolicy enforcer, so that go.mod and
// go.sum pin them.
package cilium

import (
	_ "github.com/cilium/cilium/daemon"
	_ "github.com/cilium/cilium/plugins/cilium-cni"
)
