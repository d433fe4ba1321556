// Command etcd is upstream etcd built from its Go module. etcd's own go.mod has replace
// directives, so `go install` of it fails; this wrapper module requires it instead.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
