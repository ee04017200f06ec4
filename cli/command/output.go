package command

import (
	"flag"
	"fmt"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"sigs.k8s.io/yaml"
)

// outputFlag is -o text|json|yaml on the read commands. json and yaml
// print the admin API's response message (proto/gateway/v1/admin.proto)
// in protojson's mapping: proto field names, every field present, 64-bit
// integers as strings.
type outputFlag struct{ format string }

func (o *outputFlag) register(fs *flag.FlagSet) {
	fs.StringVar(&o.format, "o", "text", "output format: text, json or yaml (the admin API's response message, proto field names; see README)")
}

func (o *outputFlag) check() error {
	switch o.format {
	case "text", "json", "yaml":
		return nil
	}
	return exitf(ExitUsage, "-o: want text, json or yaml, got %q", o.format)
}

func (o *outputFlag) text() bool { return o.format == "text" }

var jsonOut = protojson.MarshalOptions{Multiline: true, Indent: "  ", UseProtoNames: true, EmitUnpopulated: true}

// encode renders m as JSON or YAML; YAML documents start with "---" so a
// watched stream of them is one valid multi-document YAML file.
func (o *outputFlag) encode(m proto.Message) ([]byte, error) {
	b, err := jsonOut.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", o.format, err)
	}
	if o.format == "yaml" {
		y, err := yaml.JSONToYAML(b)
		if err != nil {
			return nil, fmt.Errorf("encode yaml: %w", err)
		}
		return append([]byte("---\n"), y...), nil
	}
	return append(b, '\n'), nil
}
