package load

import (
	"encoding"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"

	yamlv3 "sigs.k8s.io/yaml/goyaml.v3"
)

var (
	jsonUnmarshaler = reflect.TypeFor[json.Unmarshaler]()
	textUnmarshaler = reflect.TypeFor[encoding.TextUnmarshaler]()
)

// unknownFields walks the document's YAML tree along the Go type of target and reports the
// first key the type does not have, with its path as the API server writes it
// (spec.steps[0].grok) and its line. Keys match json tags exactly: encoding/json would accept
// "Spec" for "spec", the API server does not. A document the YAML v3 parser cannot read is left
// to the decoder, which reports its syntax error.
func unknownFields(d document, target any) error {
	var root yamlv3.Node
	if err := yamlv3.Unmarshal(d.data, &root); err != nil || len(root.Content) == 0 {
		return nil
	}
	return walk(root.Content[0], reflect.TypeOf(target), "", d.line-1, 0)
}

// maxDepth bounds the walk (YAML aliases can nest deeply).
const maxDepth = 64

func walk(n *yamlv3.Node, t reflect.Type, path string, lineOffset, depth int) error {
	if depth > maxDepth {
		return nil
	}
	for n.Kind == yamlv3.AliasNode && n.Alias != nil {
		n = n.Alias
		depth++
		if depth > maxDepth {
			return nil
		}
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	// Types that decode themselves (Quantity, Duration, Time, IntOrString, RawExtension) and
	// untyped values take any shape; the decoder checks them.
	if t.Kind() == reflect.Interface || reflect.PointerTo(t).Implements(jsonUnmarshaler) || reflect.PointerTo(t).Implements(textUnmarshaler) {
		return nil
	}
	switch t.Kind() {
	case reflect.Struct:
		if n.Kind != yamlv3.MappingNode {
			return nil // a type error, reported by the decoder
		}
		fields := jsonFields(t)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if k.Kind == yamlv3.ScalarNode && k.Tag == "!!merge" {
				// "<<: *base": the merged mapping's keys belong to this object.
				if err := walk(&yamlv3.Node{Kind: yamlv3.MappingNode, Content: mergedContent(v)}, t, path, lineOffset, depth+1); err != nil {
					return err
				}
				continue
			}
			ft, ok := fields[k.Value]
			p := join(path, k.Value)
			if !ok {
				return &lineError{line: lineOffset + k.Line, err: fmt.Errorf("%w %q", ErrUnknownField, p)}
			}
			if err := walk(v, ft, p, lineOffset, depth+1); err != nil {
				return err
			}
		}
	case reflect.Map:
		if n.Kind != yamlv3.MappingNode {
			return nil
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			if err := walk(n.Content[i+1], t.Elem(), join(path, n.Content[i].Value), lineOffset, depth+1); err != nil {
				return err
			}
		}
	case reflect.Slice, reflect.Array:
		if n.Kind != yamlv3.SequenceNode {
			return nil
		}
		for i, c := range n.Content {
			if err := walk(c, t.Elem(), fmt.Sprintf("%s[%d]", path, i), lineOffset, depth+1); err != nil {
				return err
			}
		}
	}
	return nil
}

func mergedContent(v *yamlv3.Node) []*yamlv3.Node {
	if v.Kind == yamlv3.AliasNode && v.Alias != nil {
		v = v.Alias
	}
	switch v.Kind {
	case yamlv3.MappingNode:
		return v.Content
	case yamlv3.SequenceNode:
		var out []*yamlv3.Node
		for _, c := range v.Content {
			out = append(out, mergedContent(c)...)
		}
		return out
	}
	return nil
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// jsonFields maps a struct's JSON keys to their types, with embedded structs inlined as
// encoding/json does.
func jsonFields(t reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		name, opts, _ := strings.Cut(tag, ",")
		if name == "-" && opts == "" {
			continue
		}
		if f.Anonymous && name == "" {
			ft := f.Type
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				for k, v := range jsonFields(ft) {
					out[k] = v
				}
				continue
			}
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		out[name] = f.Type
	}
	return out
}
