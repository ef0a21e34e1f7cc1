package config

import (
	"os"
	"reflect"
	"regexp"
	"strings"
	"testing"
)

// docs/config.md's full example is the defaults, written out: parsing it
// must give exactly Default().
func TestDocExampleIsTheDefaults(t *testing.T) {
	doc := readDoc(t, "config.md")
	m := regexp.MustCompile("(?s)```yaml\n(data_dir:.*?)```").FindStringSubmatch(doc)
	if m == nil {
		t.Fatal("docs/config.md: no complete example starting with data_dir:")
	}
	got, err := Parse("config.md", []byte(m[1]))
	if err != nil {
		t.Fatalf("the example does not parse: %v", err)
	}
	want := Default()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("the example is not the defaults:\n got %+v\nwant %+v", got, want)
	}
	for _, block := range regexp.MustCompile("(?s)```yaml\n(.*?)```").FindAllStringSubmatch(doc, -1) {
		if _, err := Parse("config.md", []byte(block[1])); err != nil {
			t.Errorf("example does not parse: %v\n%s", err, block[1])
		}
	}
	// The documented error is the one a user gets.
	_, err = Parse("x.yaml", []byte("api:\n  listen: \"8080\"\n"))
	if err == nil || !strings.Contains(doc, "telguard: "+err.Error()) {
		t.Errorf("docs/config.md should show the error %q", err)
	}
}

// Every field of the configuration is documented: its YAML name appears
// in docs/config.md or in the section's own page.
func TestEveryFieldIsDocumented(t *testing.T) {
	docs := readDoc(t, "config.md") + readDoc(t, "sip.md") + readDoc(t, "webhooks.md")
	var walk func(path string, typ reflect.Type)
	walk = func(path string, typ reflect.Type) {
		for typ.Kind() == reflect.Slice || typ.Kind() == reflect.Pointer || typ.Kind() == reflect.Map {
			typ = typ.Elem()
		}
		if typ.Kind() != reflect.Struct || typ.PkgPath() != reflect.TypeFor[Config]().PkgPath() {
			return
		}
		for f := range typ.Fields() {
			name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			if name == "" || name == "-" {
				continue
			}
			if !strings.Contains(docs, "`"+name+"`") && !strings.Contains(docs, name+":") {
				t.Errorf("config field %s%s is not documented in docs/config.md, sip.md or webhooks.md", path, name)
			}
			walk(path+name+".", f.Type)
		}
	}
	walk("", reflect.TypeFor[Config]())
}

func readDoc(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile("../../docs/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
