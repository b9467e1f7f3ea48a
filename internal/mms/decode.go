package mms

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"unicode/utf8"
)

var reflectString = reflect.TypeFor[string]()

// DecodeStrict reads one JSON object from r into v, a pointer to a struct.
// It is stricter than encoding/json: the body must be valid UTF-8 and a JSON
// object; its field names must match v's exactly (encoding/json would also
// take "TO" for "to") and appear once; values must have the right type; and
// nothing may follow the object. Its errors are *ValidationError values that
// name the offending field. An error reading r is returned as it is.
func DecodeStrict(r io.Reader, v any) error {
	body, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	if !utf8.Valid(body) {
		return bodyError("is not valid UTF-8")
	}
	trimmed := bytes.TrimLeft(body, " \t\r\n")
	switch {
	case len(trimmed) == 0:
		return bodyError("is empty; a JSON object is required")
	case trimmed[0] != '{':
		return bodyError("must be a JSON object")
	}
	if err := checkKeys(body, fieldNames(v)); err != nil {
		return err
	}

	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return decodeError(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return bodyError("must hold one JSON object and nothing after it")
	}
	return nil
}

func bodyError(msg string) error {
	return &ValidationError{Fields: []FieldError{{Field: "body", Message: msg}}}
}

// fieldNames lists the JSON names of the fields of the struct v points to.
func fieldNames(v any) map[string]bool {
	t := reflect.TypeOf(v)
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	names := make(map[string]bool, t.NumField())
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		if name != "" && name != "-" {
			names[name] = true
		}
	}
	return names
}

// checkKeys walks the keys of the top-level object and refuses any that is
// not exactly a known name, or that appears twice. Syntax errors are left to
// the decoder, which reports them better.
func checkKeys(body []byte, known map[string]bool) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	if _, err := dec.Token(); err != nil { // the opening brace
		return nil
	}
	seen := make(map[string]bool)
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil
		}
		key, _ := tok.(string)
		switch {
		case seen[key]:
			return &ValidationError{Fields: []FieldError{{Field: key, Message: "appears more than once"}}}
		case !known[key]:
			msg := "is not a known field"
			for k := range known {
				if strings.EqualFold(k, key) {
					msg += fmt.Sprintf("; field names are case-sensitive: did you mean %q?", k)
				}
			}
			return &ValidationError{Fields: []FieldError{{Field: key, Message: msg}}}
		}
		seen[key] = true
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return nil
		}
	}
	return nil
}

func decodeError(err error) error {
	var (
		syn  *json.SyntaxError
		typ  *json.UnmarshalTypeError
		verr *ValidationError
		fe   FieldError
	)
	switch {
	case errors.As(err, &verr):
		return verr
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
