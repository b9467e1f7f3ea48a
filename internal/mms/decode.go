package mms

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
)

var reflectString = reflect.TypeFor[string]()

// DecodeStrict reads one JSON object from r into v, refusing unknown fields,
// values of the wrong type and anything after the object. Its errors are
// *ValidationError values that name the offending field.
func DecodeStrict(r io.Reader, v any) error {
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return decodeError(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return &ValidationError{Fields: []FieldError{
			{Field: "body", Message: "must hold one JSON object and nothing after it"},
		}}
	}
	return nil
}

func decodeError(err error) error {
	var (
		syn *json.SyntaxError
		typ *json.UnmarshalTypeError
		fe  FieldError
	)
	switch {
	case errors.Is(err, io.EOF):
		fe = FieldError{Field: "body", Message: "is empty; a JSON object is required"}
	case errors.Is(err, io.ErrUnexpectedEOF):
		fe = FieldError{Field: "body", Message: "ends before the JSON object does"}
	case errors.As(err, &syn):
		fe = FieldError{Field: "body", Message: fmt.Sprintf("is not valid JSON (at byte %d)", syn.Offset)}
	case errors.As(err, &typ):
		field := typ.Field
		if field == "" {
			field = "body"
		}
		fe = FieldError{Field: field, Message: fmt.Sprintf("must be %s, not %s", describe(typ.Type), typ.Value)}
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		name := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		fe = FieldError{Field: name, Message: "is not a known field"}
	default:
		// Not a JSON problem but a failure to read the body, such as a body
		// over the size limit: the caller maps it.
		return err
	}
	return &ValidationError{Fields: []FieldError{fe}}
}

func describe(t reflect.Type) string {
	if t == nil {
		return "a value of another type"
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Map, reflect.Struct:
		return "an object"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int64, reflect.Float64:
		return "a number"
	}
	return "a " + t.String()
}

// jsonKind names the JSON type of a raw value, for error messages.
func jsonKind(b []byte) string {
	if len(b) == 0 {
		return "nothing"
	}
	switch b[0] {
	case '{':
		return "object"
	case '[':
		return "array"
	case '"':
		return "string"
	case 't', 'f':
		return "bool"
	case 'n':
		return "null"
	}
	return "number"
}
