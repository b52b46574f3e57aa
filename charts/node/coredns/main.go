// CoreDNS with only the plugins of the node's Corefile (charts/node/node.py): bind, errors,
// kubernetes, cache. Upstream's main links every plugin, cloud SDKs included, which tripled
// the build on a new machine for code the node never runs.
package main

import (
	"github.com/coredns/coredns/coremain"
	_ "github.com/coredns/coredns/plugin/bind"
	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/kubernetes"
)

func main() {
	coremain.Run()
}
