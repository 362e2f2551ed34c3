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

// Update implements approval.Updater with the store's row-locked
// update, so that queues of several nodes share the store safely.
func (a approvalStore) Update(ctx context.Context, id string, fn func(approval.Request) (approval.Request, error)) (approval.Request, error) {
	var fnErr error
	rec, err := a.st.UpdateApproval(ctx, id, func(rec store.ApprovalRecord) (store.ApprovalRecord, error) {
		fnErr = nil
		r, err := decodeApproval(rec.Doc)
		if err != nil {
			return rec, err
		}
		next, err := fn(r)
		if err != nil {
			fnErr = err
			return rec, err
		}
		doc, err := json.Marshal(next)
		if err != nil {
			return rec, err
		}
		rec.State, rec.Doc = next.State, doc
		return rec, nil
	})
	if fnErr != nil {
		return approval.Request{}, fnErr
	}
	if errors.Is(err, store.ErrNotFound) {
		return approval.Request{}, fmt.Errorf("approval request %q: %w", id, approval.ErrNotFound)
	}
	if err != nil {
		return approval.Request{}, err
	}
	return decodeApproval(rec.Doc)
}

var _ approval.Updater = approvalStore{}

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
