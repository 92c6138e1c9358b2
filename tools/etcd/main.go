// Command etcd is the etcd server, built from go.etcd.io/etcd/server/v3 for the tests' control
// plane. It is the same entry point as the upstream binary (go.etcd.io/etcd/v3's main.go).
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
