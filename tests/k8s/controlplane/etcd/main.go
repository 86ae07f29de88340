// Command etcd is the etcd 3.6 server, built from the published Go modules.
//
// go.etcd.io/etcd/server/v3 cannot be installed with `go install ...@version`
// because its go.mod carries replace directives; this wrapper module requires
// the tagged sibling modules instead and calls the same entry point as the
// upstream binary.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
