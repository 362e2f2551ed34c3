package approval

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"sync"

	"github.com/ward-dev/ward/internal/strictjson"
)

// Reviewer is an automated approver, typically another agent. Review
// returns its verdict on r; an error means no verdict, never approval.
type Reviewer interface {
	Review(ctx context.Context, r Request) (approve bool, reason string, err error)
}

// ReviewerFunc adapts a function to Reviewer.
type ReviewerFunc func(ctx context.Context, r Request) (bool, string, error)

// Review calls f.
func (f ReviewerFunc) Review(ctx context.Context, r Request) (bool, string, error) { return f(ctx, r) }

// AskReviewers asks every reviewer, concurrently, about pending request id
// and casts their verdicts as votes. reviewers maps a voter name to its
// Reviewer and voters maps the same name to the Voter it votes as (Name
// empty or equal to the key; Kind is recorded as KindAgent whatever it
// says). Reviewers that already voted, or are eligible for none of the
// required groups, are not asked.
//
// Each call is bounded by Config.ReviewTimeout. A reviewer that fails,
// times out or has no Voter casts no vote: it never counts as approval. Its
// failure is reported in the returned error (errors.Join of one error per
// reviewer, naming it), alongside the request as it stands after all
// votes; votes refused because the request closed meanwhile are not
// errors. If the request is not pending to begin with, AskReviewers asks
// nobody and returns the error wrapping ErrNotFound or ErrClosed.
func (q *Queue) AskReviewers(ctx context.Context, id string, reviewers map[string]Reviewer, voters map[string]Voter) (Request, error) {
	r, err := q.Get(ctx, id)
	if err != nil {
		return Request{}, fmt.Errorf("ask reviewers: %w", err)
	}
	if r.State != StatePending {
		return r, fmt.Errorf("ask reviewers: request %s is %s: %w", id, r.State, ErrClosed)
	}
	names := make([]string, 0, len(reviewers))
	for name := range reviewers {
		names = append(names, name)
	}
	slices.Sort(names)

	errs := make([]error, len(names))
	var wg sync.WaitGroup
	for i, name := range names {
		v, ok := voters[name]
		switch {
		case !ok:
			errs[i] = fmt.Errorf("reviewer %q: no voter: %w", name, ErrNotEligible)
			continue
		case v.Name != "" && v.Name != name:
			errs[i] = fmt.Errorf("reviewer %q: voter is named %q: %w", name, v.Name, ErrNotEligible)
			continue
		case reviewers[name] == nil:
			errs[i] = fmt.Errorf("reviewer %q: nil reviewer", name)
			continue
		}
		v.Name, v.Kind = name, KindAgent
		if _, _, err := eligible(&r, v); err != nil {
			errs[i] = fmt.Errorf("reviewer %q: %w", name, err)
			continue
		}
		if slices.ContainsFunc(r.Votes, func(x Vote) bool { return x.Voter == name }) {
			continue
		}
		wg.Go(func() {
			errs[i] = q.askOne(ctx, r.clone(), name, reviewers[name], v)
		})
	}
	wg.Wait()
	final, err := q.Get(ctx, id)
	if err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return final, fmt.Errorf("ask reviewers: %w", err)
	}
	return final, nil
}

func (q *Queue) askOne(ctx context.Context, r Request, name string, rev Reviewer, v Voter) error {
	rctx, cancel := context.WithTimeout(ctx, q.reviewTimeout)
	approve, reason, err := rev.Review(rctx, r)
	cancel()
	if err != nil {
		return fmt.Errorf("reviewer %q: %w", name, err)
	}
	if _, err := q.Vote(ctx, r.ID, v, approve, reason); err != nil && !errors.Is(err, ErrClosed) {
		return fmt.Errorf("reviewer %q: %w", name, err)
	}
	return nil
}

// WebhookReviewer is a Reviewer reached over HTTP. Review POSTs the
// request as JSON (Content-Type application/json) to URL and expects a 2xx
// response whose body is exactly
//
//	{"approve": true|false, "reason": "..."}
//
// "approve" is required; "reason" is optional. The body is read as
// internal/strictjson reads outside JSON: member names are case-sensitive
// ({"Approve": true} is an unknown member, not a vote), and unknown or
// duplicate members at any depth, invalid UTF-8 and trailing data are
// errors; so are a body over MaxResponse bytes, a non-2xx status
// (redirects included, with the default client) and transport errors. Only
// a well-formed verdict votes. The deadline comes from ctx.
type WebhookReviewer struct {
	URL string
	// Client sends the request; nil means a client that follows no
	// redirects. Authentication to the reviewer belongs in its Transport.
	Client *http.Client
	// MaxResponse bounds the response body; zero means DefaultMaxResponse.
	MaxResponse int64
}

var _ Reviewer = (*WebhookReviewer)(nil)

// webhookVerdict is the reviewer's answer.
type webhookVerdict struct {
	Approve *bool  `json:"approve"`
	Reason  string `json:"reason"`
}

// Review implements Reviewer. Errors never include the URL, which may
// carry a secret.
func (w *WebhookReviewer) Review(ctx context.Context, r Request) (bool, string, error) {
	body, err := json.Marshal(r)
	if err != nil {
		return false, "", fmt.Errorf("webhook review: encode request: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.URL, bytes.NewReader(body))
	if err != nil {
		return false, "", errors.New("webhook review: invalid URL")
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	client := w.Client
	if client == nil {
		client = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	resp, err := client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return false, "", fmt.Errorf("webhook review: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return false, "", fmt.Errorf("webhook review: status %d", resp.StatusCode)
	}
	limit := w.MaxResponse
	if limit <= 0 {
		limit = DefaultMaxResponse
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return false, "", fmt.Errorf("webhook review: read response: %w", err)
	}
	if int64(len(data)) > limit {
		return false, "", fmt.Errorf("webhook review: response exceeds %d bytes", limit)
	}
	var v webhookVerdict
	if err := strictjson.Unmarshal(data, &v); err != nil {
		return false, "", fmt.Errorf("webhook review: malformed response: %w", err)
	}
	if v.Approve == nil {
		return false, "", errors.New(`webhook review: malformed response: "approve" missing or null`)
	}
	return *v.Approve, v.Reason, nil
}
