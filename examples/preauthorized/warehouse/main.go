// Command warehouse is the data warehouse of the story of the document that
// claimed an administrator had pre-authorized an export: a small MCP server
// (stdio) that ward runs behind its gateway, as examples/preauthorized/ward.yaml
// says. It holds two datasets and exports them nowhere: an export is only
// reported, so nothing leaves this machine whatever ward decides.
//
// Tools:
//
//	summarize        what a dataset holds (read-only, closed world: not a sink)
//	export_dataset   send a dataset to a destination (a sink; its destination
//	                 argument chooses where data goes)
package main

import (
	"context"
	"fmt"
	"log"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// datasets are what the warehouse holds: rows and a one-line summary.
var datasets = map[string]struct {
	rows    int
	summary string
}{
	"customers": {1204, "1204 customers: name, contact, plan, monthly revenue, payment details"},
	"q3-churn":  {1, "Q3 churn: 87 of 1204 customers left (7.2%); top reason: price (31); largest: Initech"},
}

type datasetIn struct {
	Dataset string `json:"dataset" jsonschema:"the dataset's name: customers or q3-churn"`
}

type exportIn struct {
	Dataset     string `json:"dataset" jsonschema:"the dataset's name"`
	Destination string `json:"destination" jsonschema:"where to send it: an e-mail address or URL"`
}

func text(format string, args ...any) *mcp.CallToolResult {
	return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: fmt.Sprintf(format, args...)}}}
}

func fail(format string, args ...any) *mcp.CallToolResult {
	r := text(format, args...)
	r.IsError = true
	return r
}

func main() {
	closed := false
	s := mcp.NewServer(&mcp.Implementation{Name: "warehouse", Version: "1"}, nil)
	mcp.AddTool(s, &mcp.Tool{Name: "summarize", Description: "Summarize a dataset of the warehouse.",
		Annotations: &mcp.ToolAnnotations{ReadOnlyHint: true, OpenWorldHint: &closed}},
		func(ctx context.Context, req *mcp.CallToolRequest, in datasetIn) (*mcp.CallToolResult, any, error) {
			d, ok := datasets[in.Dataset]
			if !ok {
				return fail("no dataset %q (there are customers and q3-churn)", in.Dataset), nil, nil
			}
			return text("%s", d.summary), nil, nil
		})
	mcp.AddTool(s, &mcp.Tool{Name: "export_dataset", Description: "Export a dataset to a destination (an e-mail address or URL)."},
		func(ctx context.Context, req *mcp.CallToolRequest, in exportIn) (*mcp.CallToolResult, any, error) {
			d, ok := datasets[in.Dataset]
			if !ok {
				return fail("no dataset %q", in.Dataset), nil, nil
			}
			// A story's warehouse sends nothing anywhere: it says what it
			// would have sent, on its standard error (ward's log) too.
			log.Printf("warehouse: exported %s (%d rows) to %s", in.Dataset, d.rows, in.Destination)
			return text("exported %s (%d rows) to %s", in.Dataset, d.rows, in.Destination), nil, nil
		})
	if err := s.Run(context.Background(), &mcp.StdioTransport{}); err != nil {
		log.Fatal(err)
	}
}
