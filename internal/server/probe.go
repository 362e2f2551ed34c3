package server

import (
	"context"
	"errors"
	"time"

	"github.com/ward-dev/ward/internal/gateway"
)

// probeTimeout bounds the start-up probe of upstreams (a stdio server run
// by npx may take a while to install and start).
const probeTimeout = 60 * time.Second

// probe connects to every upstream once and warns about those it cannot
// reach and the names that clash between upstreams (gateway.Probe).
func (n *Node) probe(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	rep := n.Gateway.Probe(ctx)
	if ctx.Err() != nil && errors.Is(ctx.Err(), context.Canceled) {
		return // the node is stopping
	}
	n.mu.Lock()
	n.probed = &rep
	n.mu.Unlock()
	for _, r := range rep.Servers {
		if r.Err != nil {
			n.cfg.Logger.Warn("upstream unavailable: agents calling its tools are told it is unavailable until it is back", "server", r.Server, "err", r.Err)
		} else {
			n.cfg.Logger.Info("upstream reachable", "server", r.Server, "tools", r.Tools, "prompts", r.Prompts)
		}
	}
	for _, c := range rep.ToolClashes {
		n.cfg.Logger.Warn("tool name offered by more than one upstream", "clash", c.String())
	}
	for _, c := range rep.PromptClashes {
		n.cfg.Logger.Warn("prompt name offered by more than one upstream", "clash", c.String())
	}
}

// UpstreamProbe returns what the start-up probe found, nil before it ends
// (or when it is off).
func (n *Node) UpstreamProbe() *gateway.ProbeReport {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.probed
}
