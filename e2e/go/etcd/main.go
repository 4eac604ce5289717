// etcd's server module has no main package of its own (upstream's lives in the repository's
// root module, which the proxy does not serve at v3.6): this is that main, one call.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
