// The Envoy and Istio APIs the policy pack decodes EnvoyFilter patches and mesh config against:
// the ONE place their versions are pinned (docs/envoy-config.md says why each). Bumping a line
// here (then `go mod tidy` in this directory) changes the cache key, so the next
// `make descriptors` builds the new set.
module aimesh/descriptors

go 1.25.0

require (
	// Exactly what Istio 1.30.3 requires (also protobuf and istio.io/api below).
	github.com/cncf/xds/go v0.0.0-20260202195803-dba9d589def2
	// Istio 1.30.3 requires contrib v1.36.1-0.20260409083702-98966259b99a (not served); this is
	// the oldest served one after it, which only adds fields to the packages istiod registers.
	github.com/envoyproxy/go-control-plane/contrib v1.36.1-0.20260713214202-ca8ce173c36f
	// Istio 1.30.3 requires envoy v1.37.1-0.20260409083702-98966259b99a, which the module proxy
	// does not serve; v1.38.0 is that commit plus 11 commits that only add fields (and one
	// package istiod does not register). v1.37.0 would lack 140 commits of it.
	github.com/envoyproxy/go-control-plane/envoy v1.38.0
	google.golang.org/protobuf v1.36.11
	istio.io/api v1.30.3-0.20260710004328-2e43f07b30b6
)

require (
	cel.dev/expr v0.25.1 // indirect
	github.com/envoyproxy/protoc-gen-validate v1.3.3 // indirect
	github.com/golang/protobuf v1.5.4 // indirect
	github.com/planetscale/vtprotobuf v0.6.1-0.20240319094008-0393e58bdf10 // indirect
	github.com/prometheus/client_model v0.6.2 // indirect
	go.opentelemetry.io/proto/otlp v1.10.0 // indirect
	golang.org/x/net v0.55.0 // indirect
	golang.org/x/sys v0.45.0 // indirect
	golang.org/x/text v0.37.0 // indirect
	google.golang.org/genproto/googleapis/api v0.0.0-20260414002931-afd174a4e478 // indirect
	google.golang.org/genproto/googleapis/rpc v0.0.0-20260414002931-afd174a4e478 // indirect
	google.golang.org/grpc v1.82.0 // indirect
)
