package main

import (
	"fmt"
	"io"
	"net/url"
	"strings"

	"github.com/ward-dev/ward/internal/api"
	"github.com/ward-dev/ward/internal/enforce"
)

// toolView is one row of `ward tools list`: a pinned definition and how
// the gateway treats calls of it. Sink and SinkReason come from
// enforce.SinkWhy, the rule the gateway decides by, applied to the pinned
// definition and the node's tool declarations.
type toolView struct {
	api.PinView
	// Kind is "tool" or "prompt" (prompts are pinned under prompts#SERVER).
	Kind string `json:"kind"`
	// Sink is whether a call of the tool is a sink (context.sink): the
	// starter policy holds those for an approver, and checks where their
	// consequential arguments came from. Absent for prompts, and when the
	// node does not say which tools are declared.
	Sink *bool `json:"sink,omitempty"`
	// SinkReason is why: "declared" (tools: in the node's configuration),
	// "annotations" (readOnlyHint true and openWorldHint false) or
	// "default" (neither).
	SinkReason string `json:"sink_reason,omitempty"`
	// Declaration is the name the tool is declared under in the
	// configuration's tools: section, when it is.
	Declaration string `json:"declaration,omitempty"`
}

// declarationName is the name a pinned tool is declared under (tools: in
// the configuration): SERVER.TOOL, also for a server run by `ward mcp
// wrap`, pinned as wrap-SERVER~AGENT. ok is false for prompts.
func declarationName(v api.PinView) (name string, ok bool) {
	if strings.HasPrefix(v.Server, "prompts#") {
		return "", false
	}
	server := v.Server
	if rest, wrapped := strings.CutPrefix(server, "wrap-"); wrapped {
		if s, _, found := strings.Cut(rest, "~"); found {
			server = s
		}
	}
	return server + "." + v.Tool, true
}

// toolsList prints the node's pinned tools and how each is treated.
func listTools(c *client, server, out string, stdout io.Writer) error {
	var pins []api.PinView
	if err := c.do("GET", "/v1/tools?server="+url.QueryEscape(server), nil, &pins); err != nil {
		return err
	}
	// The declarations in force come with the taint configuration; a
	// node that does not give them leaves the treatment unknown rather
	// than guessed.
	var taintCfg struct {
		Declarations *map[string]enforce.ToolDeclaration `json:"declarations"`
	}
	if err := c.do("GET", "/v1/taint", nil, &taintCfg); err != nil {
		return err
	}
	views := make([]toolView, 0, len(pins))
	for _, p := range pins {
		v := toolView{PinView: p, Kind: "prompt"}
		if name, ok := declarationName(p); ok {
			v.Kind = "tool"
			if taintCfg.Declarations != nil {
				decl, declared := (*taintCfg.Declarations)[name]
				sink, why := enforce.SinkWhy(decl, declared, p.Definition)
				v.Sink, v.SinkReason = &sink, why
				if declared {
					v.Declaration = name
				}
			}
		}
		views = append(views, v)
	}
	if out == "json" {
		return printJSON(stdout, views)
	}
	var rows [][]string
	var waiting []toolView
	for _, v := range views {
		rows = append(rows, []string{v.Name, v.Status, treatment(v), shortHash(v.Hash), v.ApprovedBy})
		if v.Status != "approved" {
			waiting = append(waiting, v)
		}
	}
	table(stdout, "TOOL\tSTATUS\tTREATED AS\tHASH\tAPPROVED BY", rows)
	if taintCfg.Declarations == nil {
		fmt.Fprintln(stdout, "\nthis node does not report its tool declarations: how its tools are treated is not shown")
	}
	for _, v := range views {
		if v.Sink != nil && *v.Sink {
			fmt.Fprintln(stdout, "\nthe starter policy holds each call of a sink for an approver (group security); to change how a tool is treated,\ndeclare it in the node's configuration: tools: {SERVER.TOOL: {sink: false}}")
			break
		}
	}
	if len(waiting) > 0 {
		fmt.Fprintf(stdout, "\n%d definition(s) are withheld from agents until you review them (ward tools list -o json shows them) and approve:\n", len(waiting))
		for _, v := range waiting {
			fmt.Fprintf(stdout, "  ward tools approve '%s' --hash %s\n", v.Name, v.Hash)
		}
	}
	return nil
}

// treatment says in words how calls of v are treated.
func treatment(v toolView) string {
	switch {
	case v.Kind == "prompt":
		return "prompt"
	case v.Sink == nil:
		return "unknown"
	case v.SinkReason == enforce.SinkDeclared && *v.Sink:
		return "sink (declared sink: true)"
	case v.SinkReason == enforce.SinkDeclared:
		return "not a sink (declared sink: false)"
	case v.SinkReason == enforce.SinkAnnotated:
		return "not a sink (annotated read-only, closed world)"
	}
	return "sink (default: not annotated read-only and closed-world)"
}

// shortHash abbreviates a definition hash for the table; -o json and the
// approve commands printed for withheld definitions give it whole.
func shortHash(h string) string {
	const keep = len("sha256:") + 12
	if len(h) <= keep {
		return h
	}
	return h[:keep] + "…"
}
