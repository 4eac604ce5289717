// Command descriptors writes every protobuf file descriptor linked into it (imports.go) as one
// google.protobuf.FileDescriptorSet: the Envoy API, Istio's mesh and networking APIs, and what
// they import, at the versions go.mod pins. The policy pack decodes EnvoyFilter patches and
// mesh config against it (aimesh_policies/protodecode.py).
//
//	go run . OUT.binpb
//
// Files are written dependencies first, each name once, sorted otherwise, so the output is
// byte-for-byte reproducible and loads into a descriptor pool in order.
package main

import (
	"fmt"
	"os"
	"sort"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: descriptors OUT.binpb")
		os.Exit(2)
	}
	var paths []string
	files := map[string]protoreflect.FileDescriptor{}
	protoregistry.GlobalFiles.RangeFiles(func(fd protoreflect.FileDescriptor) bool {
		paths = append(paths, fd.Path())
		files[fd.Path()] = fd
		return true
	})
	sort.Strings(paths)

	set := &descriptorpb.FileDescriptorSet{}
	written := map[string]bool{}
	var write func(fd protoreflect.FileDescriptor)
	write = func(fd protoreflect.FileDescriptor) {
		if written[fd.Path()] {
			return
		}
		written[fd.Path()] = true
		imports := fd.Imports()
		for i := 0; i < imports.Len(); i++ {
			write(imports.Get(i).FileDescriptor)
		}
		set.File = append(set.File, protodesc.ToFileDescriptorProto(fd))
	}
	for _, path := range paths {
		write(files[path])
	}

	out, err := proto.MarshalOptions{Deterministic: true}.Marshal(set)
	if err == nil {
		err = os.WriteFile(os.Args[1], out, 0o644)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "descriptors:", err)
		os.Exit(1)
	}
	fmt.Fprintf(os.Stderr, "descriptors: %d files, %d bytes -> %s\n", len(set.File), len(out), os.Args[1])
}
