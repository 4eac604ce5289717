// The Kubernetes provider's own main embeds generated files that are not in its Go module
// (schema-embed.json, terraform-mapping-embed.json). This one embeds the same files, written
// by e2e/toolchain.py from the module's committed schema.json (version set) and
// terraform-mapping.json, and serves the provider exactly as upstream's main does.
package main

import (
	_ "embed"

	"github.com/pulumi/pulumi-kubernetes/provider/v4/pkg/provider"
	"github.com/pulumi/pulumi-kubernetes/provider/v4/pkg/version"
)

//go:embed schema-embed.json
var pulumiSchema []byte

//go:embed terraform-mapping-embed.json
var terraformMapping []byte

func main() {
	provider.Serve("kubernetes", version.Version, pulumiSchema, terraformMapping)
}
