package server_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/ward-dev/ward/internal/server"
)

// TestRedteamMetricsUnknownToolsBounded: an agent calling tools and
// prompts that no configured server offers, with names it makes up, must
// not add a label value per name to /metrics.
func TestRedteamMetricsUnknownToolsBounded(t *testing.T) {
	n := startNode(t, server.Config{Upstreams: demoOnly})
	n.setupAgent("reporter", nil, map[string][]string{"tools": {"demo.*"}})
	creds, _ := n.startSession("reporter", "write the weekly report", nil, "")
	cs := n.connect(t, creds.HTTPClient(false), nil)
	ctx := ctxT(t)
	for i := range 5 {
		cs.CallTool(ctx, &mcp.CallToolParams{Name: fmt.Sprintf("demo.made_up_%d", i), Arguments: map[string]any{}})
		cs.CallTool(ctx, &mcp.CallToolParams{Name: fmt.Sprintf("nosuch%d.tool", i), Arguments: map[string]any{}})
		cs.GetPrompt(ctx, &mcp.GetPromptParams{Name: fmt.Sprintf("demo.prompt_%d", i)})
	}
	fams := scrape(t, n, "")
	for _, name := range []string{"ward_calls_total", "ward_upstream_duration_seconds"} {
		f := fams[name]
		if f == nil {
			continue
		}
		for _, m := range f.Metric {
			for _, l := range m.Label {
				v := l.GetValue()
				if len(v) > 0 && (strings.Contains(v, "made_up") || strings.Contains(v, "nosuch") || strings.Contains(v, "prompt_")) {
					t.Errorf("%s has an agent-chosen label %s=%q", name, l.GetName(), v)
				}
			}
		}
	}
}
