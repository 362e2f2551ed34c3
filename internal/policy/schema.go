package policy

import (
	_ "embed"
	"errors"
	"fmt"

	xast "github.com/cedar-policy/cedar-go/x/exp/ast"
	"github.com/cedar-policy/cedar-go/x/exp/schema"
	"github.com/cedar-policy/cedar-go/x/exp/schema/validate"
)

//go:embed ward.cedarschema
var schemaText []byte

// Schema returns ward's Cedar schema (the published model of principals,
// actions, resources and context).
func Schema() []byte { return append([]byte(nil), schemaText...) }

// Validate checks every policy against ward's schema in Cedar's strict
// mode: unknown entity types, actions or attributes (principal.turst,
// context.nope), wrong types (context.taint == "x", context.port == "443"),
// attributes a policy's actions do not all have (context.method in a policy
// for every action) and unguarded access to optional or dynamic attributes
// (context.arguments.x without has) are errors. Each error names the
// policy's file, line and column. Parse does not validate, so that a Set can
// hold any Cedar; ward's loader does.
func (s *Set) Validate() error {
	if s == nil {
		return nil
	}
	var sc schema.Schema
	if err := sc.UnmarshalCedar(schemaText); err != nil {
		return fmt.Errorf("ward schema: %w", err)
	}
	rs, err := sc.Resolve()
	if err != nil {
		return fmt.Errorf("ward schema: %w", err)
	}
	v := validate.New(rs) // strict: Cedar's default, and what its docs recommend
	var errs []error
	for _, e := range s.entries {
		if err := v.Policy(e.info.ID, (*xast.Policy)(e.policy.AST())); err != nil {
			errs = append(errs, fmt.Errorf("%s: policy %q does not match ward's schema: %w", e.info.Position, e.info.ID, err))
		}
	}
	return errors.Join(errs...)
}
