package provenance

import (
	"go/parser"
	"go/token"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// TestPure: the package imports nothing that does I/O or keeps state
// outside the process's memory.
func TestPure(t *testing.T) {
	allowed := []string{"bytes", "cmp", "errors", "fmt", "hash/maphash", "html", "io", "regexp", "regexp/syntax",
		"slices", "strconv", "strings", "sync", "unicode", "unicode/utf8", "github.com/go-json-experiment/json/jsontext",
		"github.com/ward-dev/ward/internal/jsonpath"}
	files, _ := filepath.Glob("*.go")
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(token.NewFileSet(), name, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range f.Imports {
			if p, _ := strconv.Unquote(imp.Path.Value); !slices.Contains(allowed, p) {
				t.Errorf("%s imports %s", name, p)
			}
		}
	}
}
