package enforce

import (
	"encoding/json"
	"testing"

	"github.com/ward-dev/ward/internal/policy"
)

func BenchmarkSpelledAsDeclared(b *testing.B) {
	p := &Pipeline{cfg: Config{}}
	def := json.RawMessage(`{"name":"read_text_file","title":"Read Text File","description":"Read the complete contents of a file from the file system as text. Handles various text encodings and provides detailed error messages if the file cannot be read. Use this tool when you need to examine the contents of a single file. Use the 'head' parameter to read only the first N lines of a file, or the 'tail' parameter to read only the last N lines of a file. Operates on the file as text regardless of extension. Only works within allowed directories.","inputSchema":{"type":"object","properties":{"path":{"type":"string"},"tail":{"type":"number","description":"If provided, returns only the last N lines of the file"},"head":{"type":"number","description":"If provided, returns only the first N lines of the file"}},"required":["path"],"additionalProperties":false,"$schema":"http://json-schema.org/draft-07/schema#"},"annotations":{"readOnlyHint":true}}`)
	op := &Operation{Action: policy.ActionCallTool, Name: "fs.read_text_file", Server: "fs", Arguments: json.RawMessage(`{"path":"/srv/share/a.txt","head":10}`), Definition: def}
	for b.Loop() {
		if err := p.spelledAsDeclared(op); err != nil {
			b.Fatal(err)
		}
	}
}
