// Package apidoc reads the service's OpenAPI document (internal/api's
// openapi.yaml) as plain data, for the tests that hold it to the code:
// internal/api's, which check it against the routes, the security and the
// Go types, and internal/app's, which send its examples to a running API.
//
// It knows only what those tests share: parsing the document, following
// its local $refs, walking its objects, and listing its operations with
// their parameters, examples and responses. It reports problems as errors
// and leaves failing to the tests.
package apidoc

import (
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Methods are the methods a path item can describe, in lower case as the
// document spells them and in the order OpenAPI lists them.
var Methods = []string{"get", "put", "post", "delete", "options", "head", "patch", "trace"}

// PathParam matches one {name} of a path template; its group is the name.
var PathParam = regexp.MustCompile(`\{([^}]+)\}`)

// maxRefs is the longest chain of $refs Deref follows, so that a loop
// ends.
const maxRefs = 10

// Parse reads a YAML document into plain maps, slices and scalars. Every
// mapping must have string keys (an unquoted status code such as 200
// would not): each one that does not is an error, named by its place.
func Parse(data []byte) (map[string]any, error) {
	var raw any
	if err := yaml.Unmarshal(data, &raw); err != nil {
		return nil, fmt.Errorf("not valid YAML: %w", err)
	}
	var errs []error
	walk(raw, "#", true, func(at string, n any) {
		if _, ok := n.(map[any]any); ok {
			errs = append(errs, fmt.Errorf("%s: a mapping with a key that is not a string (quote it)", at))
		}
	})
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	doc, ok := raw.(map[string]any)
	if !ok {
		return nil, errors.New("the document is not a mapping")
	}
	return doc, nil
}

// Pointer returns what a local JSON pointer, such as the $ref
// #/components/schemas/Job, names in doc.
func Pointer(doc map[string]any, ref string) (any, error) {
	rest, ok := strings.CutPrefix(ref, "#/")
	if !ok {
		return nil, fmt.Errorf("$ref %s is not local", ref)
	}
	var n any = doc
	for _, part := range strings.Split(rest, "/") {
		part = strings.ReplaceAll(strings.ReplaceAll(part, "~1", "/"), "~0", "~")
		m, ok := n.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("$ref %s does not resolve", ref)
		}
		if n, ok = m[part]; !ok {
			return nil, fmt.Errorf("$ref %s does not resolve", ref)
		}
	}
	return n, nil
}

// Deref returns the object n stands for, following $refs: n itself when
// it is an object without one, nil when it is no object.
func Deref(doc map[string]any, n any) (map[string]any, error) {
	var chain []string
	for range maxRefs {
		m, ok := n.(map[string]any)
		if !ok {
			return nil, nil
		}
		ref, ok := m["$ref"].(string)
		if !ok {
			return m, nil
		}
		chain = append(chain, ref)
		target, err := Pointer(doc, ref)
		if err != nil {
			return nil, err
		}
		n = target
	}
	return nil, fmt.Errorf("$ref chain too long: %s", strings.Join(chain, " -> "))
}

// List returns v if it is a list, else nil.
func List(v any) []any {
	l, _ := v.([]any)
	return l
}

// Walk calls visit with every object in n, n itself included, and its
// place as a JSON pointer from n ("#" for n, "#/paths/~1healthz" below
// it). It goes into objects in the order of their keys and into lists,
// but not into the values of example and examples keys: those are data,
// not description.
func Walk(n any, visit func(at string, m map[string]any)) {
	walk(n, "#", false, func(at string, n any) {
		if m, ok := n.(map[string]any); ok {
			visit(at, m)
		}
	})
}

// walk calls visit with n and everything below it; withData says whether
// to go into examples too.
func walk(n any, at string, withData bool, visit func(at string, n any)) {
	visit(at, n)
	switch v := n.(type) {
	case map[string]any:
		for _, k := range slices.Sorted(maps.Keys(v)) {
			if !withData && (k == "example" || k == "examples") {
				continue
			}
			walk(v[k], at+"/"+strings.ReplaceAll(strings.ReplaceAll(k, "~", "~0"), "/", "~1"), withData, visit)
		}
	case []any:
		for i, c := range v {
			walk(c, at+"/"+strconv.Itoa(i), withData, visit)
		}
	}
}

// Operation is one method of one path that the document describes.
type Operation struct {
	Path   string         // the path template, such as /api/mms/jobs/{id}
	Method string         // in upper case, such as GET
	Op     map[string]any // the operation object
	// Params are the operation's parameters, each resolved to its object:
	// first the path item's, which all its operations share, then the
	// operation's own.
	Params []map[string]any
}

func (o Operation) String() string { return o.Method + " " + o.Path }

// Operations lists the operations of doc's paths, by path and then in the
// order of Methods. A path that is not an object is an error, and so is a
// document without operations.
func Operations(doc map[string]any) ([]Operation, error) {
	paths, ok := doc["paths"].(map[string]any)
	if !ok {
		return nil, errors.New("the document has no paths")
	}
	var out []Operation
	for _, p := range slices.Sorted(maps.Keys(paths)) {
		item, ok := paths[p].(map[string]any)
		if !ok {
			return nil, fmt.Errorf("path %s is not an object", p)
		}
		ops, err := ItemOperations(doc, p, item)
		if err != nil {
			return nil, err
		}
		out = append(out, ops...)
	}
	if len(out) == 0 {
		return nil, errors.New("the document describes no operations")
	}
	return out, nil
}

// ItemOperations lists the operations of one path item (a path's, or a
// callback's for one expression), in the order of Methods.
func ItemOperations(doc map[string]any, path string, item map[string]any) ([]Operation, error) {
	var out []Operation
	for _, m := range Methods {
		op, ok := item[m].(map[string]any)
		if !ok {
			continue
		}
		o := Operation{Path: path, Method: strings.ToUpper(m), Op: op}
		for _, src := range []any{item["parameters"], op["parameters"]} {
			for _, p := range List(src) {
				param, err := Deref(doc, p)
				if err != nil {
					return nil, fmt.Errorf("%s: a parameter: %w", o, err)
				}
				o.Params = append(o.Params, param)
			}
		}
		out = append(out, o)
	}
	return out, nil
}

// Response returns the response the operation documents for status, the
// one for the code itself, else for its class (such as 4XX), else the
// default, resolved to its object. None is an error.
func (o Operation) Response(doc map[string]any, status int) (map[string]any, error) {
	responses, ok := o.Op["responses"].(map[string]any)
	if !ok {
		return nil, fmt.Errorf("%s has no responses", o)
	}
	code := strconv.Itoa(status)
	for _, k := range []string{code, code[:1] + "XX", "default"} {
		r, ok := responses[k]
		if !ok {
			continue
		}
		resp, err := Deref(doc, r)
		if err != nil {
			return nil, fmt.Errorf("%s: response %s: %w", o, k, err)
		}
		if resp == nil {
			return nil, fmt.Errorf("%s: response %s is not an object", o, k)
		}
		return resp, nil
	}
	return nil, fmt.Errorf("%s documents no response for %d", o, status)
}

// Examples lists the examples of m (a media type, parameter or header
// object, or a schema) by name: "example" for its single example, and the
// keys of its examples for the others, each resolved to its value. An
// example without a value is an error.
func Examples(doc, m map[string]any) (map[string]any, error) {
	out := map[string]any{}
	if ex, ok := m["example"]; ok {
		out["example"] = ex
	}
	exs, _ := m["examples"].(map[string]any)
	for _, name := range slices.Sorted(maps.Keys(exs)) {
		e, err := Deref(doc, exs[name])
		if err != nil {
			return nil, fmt.Errorf("example %s: %w", name, err)
		}
		v, ok := e["value"]
		if !ok {
			return nil, fmt.Errorf("example %s has no value", name)
		}
		out[name] = v
	}
	return out, nil
}
