package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
)

// ProbeResult is what [Gateway.Probe] found of one upstream.
type ProbeResult struct {
	Server  string
	Err     error // the upstream could not be connected or listed
	Tools   int
	Prompts int
}

// ProbeReport is what [Gateway.Probe] found.
type ProbeReport struct {
	Servers       []ProbeResult // in configuration order
	ToolClashes   []Clash       // names more than one upstream offers
	PromptClashes []Clash
}

// discard is the downstream of a probe: nobody listens.
type discard struct{}

func (discard) Send(jsonrpc.Message, jsonrpc.ID) error { return nil }

// probeInit is the initialize the probe sends: ward as the client.
var probeInit = json.RawMessage(`{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"ward-probe","version":"1"}}`)

// Probe connects to every upstream once, as a session would, lists its
// tools and prompts, and reports which upstreams could not be reached and
// which names clash between upstreams (resolved as sessions will resolve
// them). It decides nothing and records nothing: what it lists is not
// pinned (the first agent session's listing is). Upstreams are probed in
// parallel; ctx bounds the whole probe.
func (g *Gateway) Probe(ctx context.Context) ProbeReport {
	s := g.NewSession(&Caller{Session: "ward-probe"}, discard{})
	defer s.Close()
	s.initOnce.Do(func() {}) // the probe connects upstreams itself
	type found struct {
		res     ProbeResult
		up      *upstream
		tools   []listed
		prompts []listed
	}
	all := make([]found, len(g.cfg.Upstreams))
	var wg sync.WaitGroup
	for i, cfg := range g.cfg.Upstreams {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f := &all[i]
			f.res.Server = cfg.Name
			up, _, err := s.connect(ctx, cfg, probeInit)
			if err != nil {
				f.res.Err = err
				return
			}
			f.up = up
			s.writeUp(up, &jsonrpc.Request{Method: "notifications/initialized"})
			for _, kind := range []Kind{KindTool, KindPrompt} {
				if !up.offers(kind) {
					continue
				}
				method, key := listMethod(kind)
				raw, err := s.fetchAll(ctx, up, method, key)
				if err != nil {
					f.res.Err = fmt.Errorf("%s: %v", cfg.Name, err)
					return
				}
				for _, r := range raw {
					if _, name, ok := item(r, "name"); ok {
						if kind == KindTool {
							f.tools = append(f.tools, listed{cfg.Name, name})
						} else {
							f.prompts = append(f.prompts, listed{cfg.Name, name})
						}
					}
				}
			}
			f.res.Tools, f.res.Prompts = len(f.tools), len(f.prompts)
		}()
	}
	wg.Wait()
	var rep ProbeReport
	var tools, prompts []listed
	for _, f := range all {
		rep.Servers = append(rep.Servers, f.res)
		if f.up != nil {
			s.ups = append(s.ups, f.up) // closed with the session
		}
		tools = append(tools, f.tools...)
		prompts = append(prompts, f.prompts...)
	}
	close(s.initDone)
	rep.ToolClashes = exposeNames(tools, g.modes).Clashes()
	rep.PromptClashes = exposeNames(prompts, g.modes).Clashes()
	return rep
}
