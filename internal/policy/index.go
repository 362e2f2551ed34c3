package policy

import (
	"iter"

	"github.com/cedar-policy/cedar-go"
	"github.com/cedar-policy/cedar-go/types"
	xast "github.com/cedar-policy/cedar-go/x/exp/ast"
)

// index files policies by the action and resource their scope can match.
//
// In ward's model the only entity hierarchy is session → agent → groups and
// resource → server for the MCP actions' tools, prompts and resources;
// hosts (http_request) and paths (exec) have no parents, and actions have
// none either. So:
//
//   - action == A and action in A match only the action A; action in [A, B]
//     only A and B; no action constraint matches every action;
//   - resource == R matches only R; resource in X matches R == X or R's
//     server X (a host or path has none); resource is T matches every
//     resource of type T; resource is T in X is filed like resource in X
//     and keeps its type test.
//
// A request with action A, resource R and server S therefore only needs the
// policies filed under action A or "any action" and, in each, under "any
// resource", exact[R], ancestor[S] or types[type of R]. A host or path has
// the zero UID as S, which no policy names. Each policy is filed in exactly
// one resource slot per action key, and the request picks each slot at most
// once, so no policy is visited twice.
type index struct {
	anyAction *resourceIndex
	byAction  map[types.EntityUID]*resourceIndex
}

type resourceIndex struct {
	any      []*entry
	exact    map[types.EntityUID][]*entry // resource == X, resource in X, resource is T in X
	ancestor map[types.EntityUID][]*entry // resource in X, resource is T in X
	types    map[types.EntityType][]*entry
}

func newResourceIndex() *resourceIndex {
	return &resourceIndex{
		exact:    map[types.EntityUID][]*entry{},
		ancestor: map[types.EntityUID][]*entry{},
		types:    map[types.EntityType][]*entry{},
	}
}

func (ri *resourceIndex) add(e *entry, scope xast.IsResourceScopeNode) {
	switch s := scope.(type) {
	case xast.ScopeTypeEq:
		ri.exact[s.Entity] = append(ri.exact[s.Entity], e)
	case xast.ScopeTypeIn:
		ri.exact[s.Entity] = append(ri.exact[s.Entity], e)
		ri.ancestor[s.Entity] = append(ri.ancestor[s.Entity], e)
	case xast.ScopeTypeIsIn:
		ri.exact[s.Entity] = append(ri.exact[s.Entity], e)
		ri.ancestor[s.Entity] = append(ri.ancestor[s.Entity], e)
	case xast.ScopeTypeIs:
		ri.types[s.Type] = append(ri.types[s.Type], e)
	default: // ScopeTypeAll, or anything new: always evaluate
		ri.any = append(ri.any, e)
	}
}

func buildIndex(entries []*entry) index {
	ix := index{anyAction: newResourceIndex(), byAction: map[types.EntityUID]*resourceIndex{}}
	forAction := func(a types.EntityUID) *resourceIndex {
		ri, ok := ix.byAction[a]
		if !ok {
			ri = newResourceIndex()
			ix.byAction[a] = ri
		}
		return ri
	}
	for _, e := range entries {
		ast := (*xast.Policy)(e.policy.AST())
		e.principal = newPrincipalScope(ast.Principal)
		switch s := ast.Action.(type) {
		case xast.ScopeTypeEq:
			forAction(s.Entity).add(e, ast.Resource)
		case xast.ScopeTypeIn:
			forAction(s.Entity).add(e, ast.Resource)
		case xast.ScopeTypeInSet:
			seen := map[types.EntityUID]bool{}
			for _, a := range s.Entities {
				if !seen[a] {
					seen[a] = true
					forAction(a).add(e, ast.Resource)
				}
			}
		default:
			ix.anyAction.add(e, ast.Resource)
		}
	}
	return ix
}

// principalScope is a policy's principal scope, checked before evaluation
// so that policies for other principals are skipped. The principal is always
// a session whose ancestors are its agent and the agent's groups, so
// "principal in X" holds exactly when X is the session, the agent or one of
// the groups.
type principalScope struct {
	kind principalKind
	uid  types.EntityUID
	typ  types.EntityType
}

type principalKind uint8

const (
	principalAny principalKind = iota
	principalEq
	principalIn
	principalIs
	principalIsIn
)

func newPrincipalScope(scope xast.IsPrincipalScopeNode) principalScope {
	switch s := scope.(type) {
	case xast.ScopeTypeEq:
		return principalScope{kind: principalEq, uid: s.Entity}
	case xast.ScopeTypeIn:
		return principalScope{kind: principalIn, uid: s.Entity}
	case xast.ScopeTypeIs:
		return principalScope{kind: principalIs, typ: s.Type}
	case xast.ScopeTypeIsIn:
		return principalScope{kind: principalIsIn, uid: s.Entity, typ: s.Type}
	}
	return principalScope{kind: principalAny} // evaluated as usual
}

// mayMatch reports whether the scope can match the principal of e. False
// only when Cedar would find the scope false.
func (ps *principalScope) mayMatch(e *entities) bool {
	switch ps.kind {
	case principalEq:
		return ps.uid == e.session.UID
	case principalIn:
		return e.inPrincipal(ps.uid)
	case principalIs:
		return ps.typ == e.session.UID.Type
	case principalIsIn:
		return ps.typ == e.session.UID.Type && e.inPrincipal(ps.uid)
	}
	return true
}

// inPrincipal reports whether "principal in uid" holds.
func (e *entities) inPrincipal(uid types.EntityUID) bool {
	switch uid.Type {
	case typeSession:
		return uid == e.session.UID
	case typeAgent:
		return uid == e.agent.UID
	case typeGroup:
		for _, g := range e.groups {
			if g == uid {
				return true
			}
		}
	}
	return false
}

// candidates is the policies that may match one request: up to four slots
// under the request's action and four under "any action", filtered by
// principal scope.
type candidates struct {
	lists [8][]*entry
	ents  *entities
	// permitsOnly skips forbids (escalation asks whether any permit applies).
	permitsOnly bool
}

func (ix *index) candidates(ents *entities, action, resource, server types.EntityUID) candidates {
	c := candidates{ents: ents}
	fill := func(ri *resourceIndex, off int) {
		if ri == nil {
			return
		}
		c.lists[off] = ri.any
		c.lists[off+1] = ri.exact[resource]
		c.lists[off+2] = ri.ancestor[server]
		c.lists[off+3] = ri.types[resource.Type]
	}
	fill(ix.byAction[action], 0)
	fill(ix.anyAction, 4)
	return c
}

// All implements cedar.PolicyIterator.
func (c *candidates) All() iter.Seq2[cedar.PolicyID, *cedar.Policy] {
	return func(yield func(cedar.PolicyID, *cedar.Policy) bool) {
		for _, l := range c.lists {
			for _, e := range l {
				if (c.permitsOnly && e.forbid) || !e.principal.mayMatch(c.ents) {
					continue
				}
				if !yield(e.id, e.policy) {
					return
				}
			}
		}
	}
}
