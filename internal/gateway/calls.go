package gateway

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"go.opentelemetry.io/otel/attribute"

	"github.com/ward-dev/ward/internal/policy"
	"github.com/ward-dev/ward/internal/strictjson"
)

// codeCancelled answers a request the client cancelled (as LSP's
// RequestCancelled).
const codeCancelled = -32800

// observeTimeout bounds recording an outcome, independently of the call's
// own deadline.
const observeTimeout = 10 * time.Second

// forwarder builds the params forwarded upstream from the operation as
// decided (Check may have rewritten its arguments).
type forwarder func(op *Operation) json.RawMessage

// callNamed serves tools/call and prompts/get.
func (s *Session) callNamed(ctx context.Context, req *jsonrpc.Request, p params, kind Kind) {
	name, ok, err := p.str("name")
	if err != nil || !ok || name == "" {
		s.replyErr(req.ID, jsonrpc.CodeInvalidParams, req.Method+": params must be an object with a string \"name\"", nil)
		return
	}
	entry, stable, err := s.resolve(ctx, kind, name)
	if err != nil {
		s.refuseName(ctx, req, actionFor(kind), name, err)
		return
	}
	up := s.byName[entry.server]
	op := &Operation{Action: actionFor(kind), Method: req.Method, Server: entry.server, Name: stable, Upstream: entry.upstream, Definition: entry.def}
	if args, ok := p["arguments"]; ok && string(args) != "null" {
		op.Arguments = json.RawMessage(args)
	}
	s.decideAndForward(ctx, req, up, op, func(op *Operation) json.RawMessage {
		fwd := p.with("name", entry.upstream)
		if op.Arguments != nil {
			fwd = fwd.with("arguments", op.Arguments)
		}
		return fwd.encode()
	})
}

func actionFor(k Kind) policy.Action {
	switch k {
	case KindPrompt:
		return policy.ActionGetPrompt
	case KindResource, KindResourceTemplate:
		return policy.ActionReadResource
	default:
		return policy.ActionCallTool
	}
}

// resourceOp serves resources/read, resources/subscribe and
// resources/unsubscribe.
func (s *Session) resourceOp(ctx context.Context, req *jsonrpc.Request, p params) {
	uri, ok, err := p.str("uri")
	if err != nil || !ok || uri == "" {
		s.replyErr(req.ID, jsonrpc.CodeInvalidParams, req.Method+": params must carry a string \"uri\"", nil)
		return
	}
	if err := checkURI(uri); err != nil {
		s.refuse(ctx, req, policy.ActionReadResource, uri, err.Error())
		return
	}
	up, err := s.routeURI(ctx, uri)
	if err != nil {
		s.refuse(ctx, req, policy.ActionReadResource, uri, err.Error())
		return
	}
	op := &Operation{Action: policy.ActionReadResource, Method: req.Method, Server: up.name, Name: uri, Upstream: uri}
	s.decideAndForward(ctx, req, up, op, func(*Operation) json.RawMessage { return p.encode() })
}

// complete serves completion/complete: a completion for a prompt's argument
// is decided as getting the prompt, one for a resource template's as reading
// the resource, with the arguments completed so far as arguments.
func (s *Session) complete(ctx context.Context, req *jsonrpc.Request, p params) {
	bad := func(why string) {
		s.replyErr(req.ID, jsonrpc.CodeInvalidParams, "completion/complete: "+why, nil)
	}
	ref, err := p.object("ref")
	if err != nil || ref == nil {
		bad(`params must carry an object "ref"`)
		return
	}
	if err := ref.spelled("type", "name", "uri"); err != nil {
		s.refuseUnread(req, err.Error())
		return
	}
	typ, _, err := ref.str("type")
	if err != nil {
		bad(err.Error())
		return
	}
	args := map[string]string{}
	c, err := p.object("context")
	if err != nil {
		bad(err.Error())
		return
	}
	if c != nil {
		if err := c.spelled("arguments"); err != nil {
			s.refuseUnread(req, err.Error())
			return
		}
		if raw, ok := c["arguments"]; ok && string(raw) != "null" {
			if err := strictjson.Unmarshal(raw, &args); err != nil {
				bad(`"context.arguments" must be an object of strings`)
				return
			}
		}
	}
	argument, err := p.object("argument")
	if err != nil || argument == nil {
		bad(`params must carry an object "argument"`)
		return
	}
	if err := argument.spelled("name", "value"); err != nil {
		s.refuseUnread(req, err.Error())
		return
	}
	aname, _, err1 := argument.str("name")
	avalue, _, err2 := argument.str("value")
	if err := errors.Join(err1, err2); err != nil || aname == "" {
		bad(`"argument" must carry a string "name" and a string "value"`)
		return
	}
	args[aname] = avalue
	argJSON, _ := json.Marshal(args)
	switch typ {
	case "ref/prompt":
		name, _, err := ref.str("name")
		if err != nil {
			bad(err.Error())
			return
		}
		entry, stable, err := s.resolve(ctx, KindPrompt, name)
		if err != nil {
			s.refuseName(ctx, req, policy.ActionGetPrompt, name, err)
			return
		}
		up := s.byName[entry.server]
		op := &Operation{Action: policy.ActionGetPrompt, Method: req.Method, Server: entry.server, Name: stable, Upstream: entry.upstream, Arguments: argJSON, Definition: entry.def}
		s.decideAndForward(ctx, req, up, op, func(*Operation) json.RawMessage {
			return p.with("ref", ref.with("name", entry.upstream)).encode()
		})
	case "ref/resource":
		uri, _, err := ref.str("uri")
		if err != nil {
			bad(err.Error())
			return
		}
		if err := checkURI(uri); err != nil {
			s.refuse(ctx, req, policy.ActionReadResource, uri, err.Error())
			return
		}
		up, err := s.routeURI(ctx, uri)
		if err != nil {
			s.refuse(ctx, req, policy.ActionReadResource, uri, err.Error())
			return
		}
		op := &Operation{Action: policy.ActionReadResource, Method: req.Method, Server: up.name, Name: uri, Upstream: uri, Arguments: argJSON}
		s.decideAndForward(ctx, req, up, op, func(*Operation) json.RawMessage { return p.encode() })
	default:
		bad(fmt.Sprintf("unknown ref type %q", typ))
	}
}

func (s *Session) setLevel(ctx context.Context, req *jsonrpc.Request, p params) {
	if _, ok, err := p.str("level"); err != nil || !ok {
		s.replyErr(req.ID, jsonrpc.CodeInvalidParams, `logging/setLevel: params must carry a string "level"`, nil)
		return
	}
	// The level alone: other members would reach every upstream
	// undecided.
	fwd := params{"level": p["level"]}.encode()
	var errs []string
	n := 0
	for _, up := range s.ups {
		if up.caps.Logging == nil {
			continue
		}
		n++
		resp, err := s.roundTrip(ctx, up, req.Method, fwd, jsonrpc.ID{})
		if err == nil && resp.Error != nil {
			err = resp.Error
		}
		if err != nil {
			errs = append(errs, fmt.Sprintf("%s: %v", up.name, err))
		}
	}
	if n > 0 && len(errs) == n {
		s.replyErr(req.ID, CodeUpstream, "logging/setLevel failed: "+strings.Join(errs, "; "), nil)
		return
	}
	s.reply(req.ID, map[string]any{})
}

// decideAndForward asks the guard, forwards what it decided if allowed,
// records the outcome and answers the client.
func (s *Session) decideAndForward(ctx context.Context, req *jsonrpc.Request, up *upstream, op *Operation, fwd forwarder) {
	// Every path below that forwards the call observes its outcome before
	// answering: the guard may let it go once its decision is written,
	// and makes that decision durable, with the result, in Observe.
	op.Forwarding = true
	ctx, span := s.startCall(ctx, req, op)
	defer span.End()
	dctx, dspan := start(ctx, "ward.decide")
	v, err := s.g.cfg.Guard.Check(dctx, s.who(), op)
	verdictAttrs(dspan, v)
	if err != nil {
		failSpan(dspan, "ward.undecided", err.Error())
	}
	dspan.End()
	verdictAttrs(span, v)
	if err != nil {
		failSpan(span, "ward.undecided", "ward could not decide")
		s.deny(req, fmt.Sprintf("ward could not decide %s %s (denied): %v", req.Method, op.Name, err), nil)
		return
	}
	if v.Escalate {
		v, err = s.hold(ctx, req, op, v)
		if err != nil {
			s.deny(req, fmt.Sprintf("ward could not decide %s %s after approval (denied): %v", req.Method, op.Name, err), nil)
			return
		}
		verdictAttrs(span, v)
		if v.Escalate {
			data, _ := json.Marshal(map[string]any{"decision": "escalate", "reason": v.Reason, "policies": v.Policies, "approvals": v.Approvals})
			s.replyErr(req.ID, CodePending, fmt.Sprintf("ward is holding %s %s for approval (request %s): %s; retry the same call once it is approved", req.Method, op.Name, strings.Join(v.Approvals, ", "), v.Reason), data)
			return
		}
	}
	if !v.Allow {
		failSpan(span, "ward.denied", "denied by ward")
		s.deny(req, v.Reason, v.Policies)
		return
	}
	if s.cancelled(req.ID) {
		s.observe(op, Outcome{Error: "cancelled by the client before it was forwarded", Decision: v.Event})
		s.replyErr(req.ID, codeCancelled, "request cancelled by the client", nil)
		return
	}
	uctx, uspan := startUpstream(ctx, req.Method, op)
	began := time.Now()
	resp, err := s.roundTrip(uctx, up, req.Method, fwd(op), req.ID)
	switch {
	case err != nil:
		failSpan(uspan, "ward.upstream_failed", err.Error())
	case resp.Error != nil:
		failSpan(uspan, "jsonrpc.error", "the upstream answered with an error")
	}
	uspan.End()
	// A request that left ward may have done its work, whatever came back
	// (cancellation is advisory, an error may follow a side effect): its
	// quota is kept.
	out := Outcome{Duration: time.Since(began), Decision: v.Event, Forwarded: !errors.Is(err, errNotSent)}
	switch {
	case errors.Is(err, errCancelled):
		out.Error = "cancelled by the client"
		s.observe(op, out)
		// Answer anyway so that transports can release the request's
		// stream; clients ignore answers to requests they cancelled.
		s.replyErr(req.ID, codeCancelled, "request cancelled by the client", nil)
		return
	case err != nil:
		out.Error = err.Error()
		s.observe(op, out)
		s.replyErr(req.ID, CodeUpstream, err.Error(), nil)
		return
	}
	out.Answered = true
	if resp.Error != nil {
		out.Error = resp.Error.Error()
		// An error's message and data are the upstream's words too: the
		// guard labels and scans them like a result.
		out.Result, _ = json.Marshal(resp.Error)
	} else {
		sum := sha256.Sum256(resp.Result)
		out.ResultDigest = hex.EncodeToString(sum[:])
		out.ResultBytes = len(resp.Result)
		out.Result = resp.Result
		var r struct {
			IsError bool `json:"isError"`
		}
		_ = strictjson.UnmarshalOpen(resp.Result, &r)
		out.IsError = r.IsError
	}
	octx, ocancel := context.WithTimeout(context.WithoutCancel(ctx), observeTimeout)
	defer ocancel()
	octx, ospan := start(octx, "ward.audit.record")
	err = s.g.cfg.Guard.Observe(octx, s.who(), op, out)
	if err != nil {
		failSpan(ospan, "ward.unrecorded", err.Error())
	}
	ospan.End()
	if err != nil {
		failSpan(span, "ward.unrecorded", "the result could not be recorded")
		// The result could not be recorded: withhold it (fail closed).
		s.replyErr(req.ID, CodeDenied, "ward could not record the result, so it is withheld: "+err.Error(), nil)
		return
	}
	s.send(&jsonrpc.Response{ID: req.ID, Result: resp.Result, Error: resp.Error}, req.ID)
}

// hold keeps an escalated call waiting for its approvals, up to the hold
// timeout, telling the client with progress notifications if it asked for
// progress. Once approved, the call is decided again (which redeems the
// approvals); otherwise the escalated verdict is returned with the final
// state in its reason.
func (s *Session) hold(ctx context.Context, req *jsonrpc.Request, op *Operation, v Verdict) (Verdict, error) {
	if s.g.cfg.HoldTimeout < 0 {
		return v, nil
	}
	hctx, cancel := context.WithTimeout(ctx, s.g.cfg.HoldTimeout)
	defer cancel()
	if tok := progressToken(req.Params); tok != "" {
		go func() {
			t := time.NewTicker(2 * time.Second)
			defer t.Stop()
			for n := 1; ; n++ {
				select {
				case <-hctx.Done():
					return
				case <-t.C:
					params, _ := json.Marshal(map[string]any{"progressToken": json.RawMessage(tok), "progress": n,
						"message": "waiting for approval of request " + strings.Join(v.Approvals, ", ")})
					s.send(&jsonrpc.Request{Method: "notifications/progress", Params: params}, req.ID)
				}
			}
		}()
	}
	stop := make(chan struct{})
	go func() {
		// A client cancel, or the node shutting down, ends the hold.
		s.mu.Lock()
		c := s.calls[req.ID]
		s.mu.Unlock()
		var cancelled <-chan struct{}
		if c != nil {
			cancelled = c.stop
		}
		select {
		case <-cancelled:
			cancel()
		case <-s.g.endHolds:
			cancel()
		case <-stop:
		}
	}()
	actx, aspan := start(hctx, "ward.approval.wait")
	state, err := s.g.cfg.Guard.Await(actx, s.who(), v.Approvals)
	if aspan.IsRecording() {
		aspan.SetAttributes(attribute.String("ward.approval.state", state), attribute.StringSlice("ward.approvals", v.Approvals))
	}
	aspan.End()
	close(stop)
	if err != nil {
		return Verdict{}, err
	}
	switch state {
	case "approved":
		return s.g.cfg.Guard.Check(ctx, s.who(), op)
	case "pending":
		return v, nil
	default:
		return Verdict{Reason: fmt.Sprintf("approval request %s was %s: %s", strings.Join(v.Approvals, ", "), state, v.Reason), Policies: v.Policies}, nil
	}
}

func (s *Session) cancelled(id jsonrpc.ID) bool {
	s.mu.Lock()
	c := s.calls[id]
	s.mu.Unlock()
	if c == nil {
		return false
	}
	select {
	case <-c.stop:
		return true
	default:
		return false
	}
}

func (s *Session) observe(op *Operation, out Outcome) {
	ctx, cancel := context.WithTimeout(context.Background(), observeTimeout)
	defer cancel()
	if err := s.g.cfg.Guard.Observe(ctx, s.who(), op, out); err != nil {
		s.g.cfg.Logger.Error("recording outcome failed", "session", s.who().Session, "op", op.Name, "err", err)
	}
}

// refuse denies a request the gateway cannot even route (unknown name,
// unsafe URI), recording the refusal like any other decision.
func (s *Session) refuse(ctx context.Context, req *jsonrpc.Request, action policy.Action, name, reason string) {
	op := &Operation{Action: action, Method: req.Method, Name: name, Refused: reason}
	if _, err := s.g.cfg.Guard.Check(ctx, s.who(), op); err != nil {
		reason += " (and the refusal could not be recorded: " + err.Error() + ")"
	}
	s.deny(req, reason, nil)
}

// refuseName records and answers a call by a name that resolves to
// nothing: an upstream that is not connected is the upstream's failure
// (CodeUpstream), any other name the agent's (a denial).
func (s *Session) refuseName(ctx context.Context, req *jsonrpc.Request, action policy.Action, name string, err error) {
	var down *errUnavailable
	if !errors.As(err, &down) {
		s.refuse(ctx, req, action, name, err.Error())
		return
	}
	reason := err.Error()
	op := &Operation{Action: action, Method: req.Method, Name: name, Refused: reason}
	if _, rerr := s.g.cfg.Guard.Check(ctx, s.who(), op); rerr != nil {
		reason += " (and the refusal could not be recorded: " + rerr.Error() + ")"
	}
	s.replyErr(req.ID, CodeUpstream, reason, nil)
}

func (s *Session) deny(req *jsonrpc.Request, reason string, policies []string) {
	data, _ := json.Marshal(map[string]any{"decision": "deny", "reason": reason, "policies": policies})
	s.replyErr(req.ID, CodeDenied, "ward denied "+req.Method+": "+reason, data)
}
