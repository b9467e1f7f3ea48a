package apidoc

import (
	"testing"

	"github.com/stretchr/testify/require"
)

const sample = `
openapi: 3.0.3
paths:
  /b/{id}:
    parameters:
      - $ref: '#/components/parameters/ID'
    post:
      parameters:
        - {name: q, in: query, schema: {type: string}}
      responses:
        '200': {$ref: '#/components/responses/OK'}
        4XX: {description: client error}
        default: {description: other}
    get:
      responses:
        '200': {description: ok}
  /a:
    delete:
      responses:
        '204': {description: gone}
components:
  parameters:
    ID: {name: id, in: path, required: true, schema: {type: string}}
  responses:
    OK: {$ref: '#/components/responses/Plain'}
    Plain:
      description: ok
      content:
        application/json:
          example: {a: 1}
          examples:
            one: {value: 1}
            two: {$ref: '#/components/examples/Two'}
  examples:
    Two: {value: 2}
  schemas:
    a/b~c: {type: string}
`

// parseSample parses sample, which must parse.
func parseSample(t *testing.T) map[string]any {
	t.Helper()
	doc, err := Parse([]byte(sample))
	require.NoError(t, err)
	return doc
}

func TestParse(t *testing.T) {
	doc := parseSample(t)
	require.Equal(t, "3.0.3", doc["openapi"])

	_, err := Parse([]byte("paths:\n  /x:\n    get:\n      responses:\n        200: {description: ok}\n"))
	require.ErrorContains(t, err, "#/paths/~1x/get/responses: a mapping with a key that is not a string")

	_, err = Parse([]byte("a: [1"))
	require.ErrorContains(t, err, "not valid YAML")
	_, err = Parse([]byte("- 1\n"))
	require.ErrorContains(t, err, "not a mapping")
}

func TestPointerAndDeref(t *testing.T) {
	doc := parseSample(t)

	n, err := Pointer(doc, "#/components/schemas/a~1b~0c")
	require.NoError(t, err)
	require.Equal(t, map[string]any{"type": "string"}, n)
	_, err = Pointer(doc, "#/components/schemas/none")
	require.ErrorContains(t, err, "does not resolve")
	_, err = Pointer(doc, "#/openapi/x")
	require.ErrorContains(t, err, "does not resolve")
	_, err = Pointer(doc, "other.yaml#/x")
	require.ErrorContains(t, err, "not local")

	m, err := Deref(doc, map[string]any{"$ref": "#/components/responses/OK"})
	require.NoError(t, err)
	require.Equal(t, "ok", m["description"])
	m, err = Deref(doc, "not an object")
	require.NoError(t, err)
	require.Nil(t, m)
	_, err = Deref(doc, map[string]any{"$ref": "#/nowhere"})
	require.Error(t, err)

	loop := map[string]any{"components": map[string]any{"schemas": map[string]any{
		"A": map[string]any{"$ref": "#/components/schemas/B"},
		"B": map[string]any{"$ref": "#/components/schemas/A"},
	}}}
	_, err = Deref(loop, map[string]any{"$ref": "#/components/schemas/A"})
	require.ErrorContains(t, err, "chain too long")
}

func TestOperations(t *testing.T) {
	doc := parseSample(t)
	ops, err := Operations(doc)
	require.NoError(t, err)
	var names []string
	for _, o := range ops {
		names = append(names, o.String())
	}
	require.Equal(t, []string{"DELETE /a", "GET /b/{id}", "POST /b/{id}"}, names)
	require.Len(t, ops[1].Params, 1)
	require.Equal(t, "id", ops[1].Params[0]["name"], "the path item's parameter, resolved")
	require.Len(t, ops[2].Params, 2)
	require.Equal(t, "id", ops[2].Params[0]["name"], "the path item's parameters come first")
	require.Equal(t, "q", ops[2].Params[1]["name"])

	resp, err := ops[2].Response(doc, 200)
	require.NoError(t, err)
	require.Equal(t, "ok", resp["description"], "resolved through two $refs")
	resp, err = ops[2].Response(doc, 404)
	require.NoError(t, err)
	require.Equal(t, "client error", resp["description"])
	resp, err = ops[2].Response(doc, 503)
	require.NoError(t, err)
	require.Equal(t, "other", resp["description"])
	_, err = ops[0].Response(doc, 200)
	require.ErrorContains(t, err, "DELETE /a documents no response for 200")

	_, err = Operations(map[string]any{})
	require.ErrorContains(t, err, "no paths")
	_, err = Operations(map[string]any{"paths": map[string]any{"/x": "y"}})
	require.ErrorContains(t, err, "path /x is not an object")
	_, err = Operations(map[string]any{"paths": map[string]any{"/x": map[string]any{}}})
	require.ErrorContains(t, err, "no operations")
	_, err = Operations(map[string]any{"paths": map[string]any{"/x": map[string]any{
		"parameters": []any{map[string]any{"$ref": "#/nowhere"}},
		"get":        map[string]any{},
	}}})
	require.ErrorContains(t, err, "GET /x: a parameter: $ref #/nowhere does not resolve")
}

func TestExamplesAndWalk(t *testing.T) {
	doc := parseSample(t)
	media, err := Pointer(doc, "#/components/responses/Plain/content/application~1json")
	require.NoError(t, err)
	exs, err := Examples(doc, media.(map[string]any))
	require.NoError(t, err)
	require.Equal(t, map[string]any{"example": map[string]any{"a": 1}, "one": 1, "two": 2}, exs)
	_, err = Examples(doc, map[string]any{"examples": map[string]any{"bad": map[string]any{"summary": "x"}}})
	require.ErrorContains(t, err, "example bad has no value")

	var places []string
	Walk(map[string]any{
		"x/y":      map[string]any{"example": map[string]any{"in": "data"}},
		"examples": map[string]any{"e": map[string]any{}},
		"list":     []any{map[string]any{}, "scalar"},
	}, func(at string, _ map[string]any) { places = append(places, at) })
	require.Equal(t, []string{"#", "#/list/0", "#/x~1y"}, places, "objects only, in key order, not into examples")
}
