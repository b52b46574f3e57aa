// etcd, built from its Go module at the version go.mod pins (the one Kubernetes' own client
// is at): the PyPI build is 3.5.1, too old for the API server's watch progress requests.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
