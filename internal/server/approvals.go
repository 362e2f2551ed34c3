package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/ward-dev/ward/internal/approval"
	"github.com/ward-dev/ward/internal/store"
)

// approvalStore keeps the approval queue in the node's store, so pending
// and granted approvals survive a restart.
type approvalStore struct{ st *store.Store }

var _ approval.Store = approvalStore{}

func (a approvalStore) Put(ctx context.Context, r approval.Request) error {
	doc, err := json.Marshal(r)
	if err != nil {
		return err
	}
	return a.st.PutApproval(ctx, store.ApprovalRecord{ID: r.ID, Session: r.Session, Sponsor: r.Sponsor, State: r.State,
		CallHash: r.CallHash, Created: r.Created, Doc: doc})
}

func (a approvalStore) Get(ctx context.Context, id string) (approval.Request, error) {
	doc, err := a.st.GetApproval(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return approval.Request{}, fmt.Errorf("approval request %q: %w", id, approval.ErrNotFound)
	}
	if err != nil {
		return approval.Request{}, err
	}
	return decodeApproval(doc)
}

func (a approvalStore) List(ctx context.Context, f approval.Filter) ([]approval.Request, error) {
	docs, err := a.st.ListApprovals(ctx, store.ApprovalFilter{State: f.State, Session: f.Session, Sponsor: f.Sponsor, CallHash: f.CallHash})
	if err != nil {
		return nil, err
	}
	out := make([]approval.Request, 0, len(docs))
	for _, d := range docs {
		r, err := decodeApproval(d)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

func decodeApproval(doc []byte) (approval.Request, error) {
	var r approval.Request
	if err := json.Unmarshal(doc, &r); err != nil {
		return r, fmt.Errorf("stored approval request: %w", err)
	}
	return r, nil
}
