package egress

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
)

// errEncoded refuses a brokered response whose body the proxy cannot check
// for the secret.
var errEncoded = errors.New("upstream response has a content encoding ward cannot check for leaked credentials")

// serveRequest decides and forwards an absolute-form request or a request
// inside an intercepted tunnel.
func (p *Proxy) serveRequest(w http.ResponseWriter, r *http.Request, x *exchange) {
	ctx, release, err := p.open(r.Context(), x.id.Session, false)
	if err != nil {
		p.refuse(r.Context(), w, x, http.StatusServiceUnavailable, err.Error(), nil)
		return
	}
	defer release()
	if !p.decide(ctx, w, x) {
		return
	}
	addrs := p.resolve(ctx, w, x)
	if addrs == nil || !p.forwarding(ctx, w, x) {
		return
	}
	p.forward(context.WithValue(ctx, addrsKey{}, addrs), w, r, x)
}

// forward sends r upstream and streams the response back, then writes the
// PhaseDone record. If that record cannot be written the agent's connection
// is aborted.
func (p *Proxy) forward(ctx context.Context, w http.ResponseWriter, r *http.Request, x *exchange) {
	out := &responseWriter{ResponseWriter: w}
	if x.cred != nil {
		out.mask = x.cred.mask
	}
	r = r.WithContext(ctx)
	up := &countingReader{rc: r.Body}
	r.Body = up
	var down *countingReader
	var failure error
	rp := &httputil.ReverseProxy{
		Rewrite:    func(pr *httputil.ProxyRequest) { rewrite(pr.Out, x) },
		Transport:  p.transport,
		BufferPool: &p.buffers,
		ErrorLog:   discardLog,
		ModifyResponse: func(resp *http.Response) error {
			if x.cred != nil {
				for _, ce := range resp.Header.Values("Content-Encoding") {
					if !strings.EqualFold(strings.TrimSpace(ce), "identity") {
						return errEncoded
					}
				}
			}
			if len(resp.Trailer) > 0 {
				// An HTTP/2 upstream may send a length with trailers; over
				// HTTP/1.1 trailers need chunking, hence no length.
				resp.Header.Del("Content-Length")
				resp.ContentLength = -1
			}
			down = &countingReader{rc: resp.Body}
			resp.Body = down
			if x.cred != nil {
				resp.Body = newMaskReader(resp.Body, x.cred.mask, func() { x.cred.mask.header(resp.Trailer) })
			}
			if p.cfg.OnResponse != nil {
				p.cfg.OnResponse(x.id, x.req, resp)
			}
			return nil
		},
		ErrorHandler: func(w http.ResponseWriter, _ *http.Request, err error) {
			failure = err
			msg := "upstream request failed"
			if errors.Is(err, errEncoded) {
				msg = errEncoded.Error()
			}
			p.answer(w, http.StatusBadGateway, msg)
		},
	}
	defer func() {
		v := recover() // http.ErrAbortHandler when the response body broke off
		if failure == nil && down != nil && down.err != nil {
			failure = fmt.Errorf("read response body: %w", down.err)
		} else if failure == nil && v != nil {
			failure = fmt.Errorf("response aborted: %v", v)
		}
		if err := p.finish(ctx, x, out.status, up.n.Load(), out.n, failure); err != nil && v == nil {
			v = http.ErrAbortHandler
		}
		if v != nil {
			panic(v)
		}
	}()
	rp.ServeHTTP(out, r)
}

// bufferPool is an httputil.BufferPool of 32 KiB buffers.
type bufferPool struct{ p sync.Pool }

func (b *bufferPool) Get() []byte {
	if buf, ok := b.p.Get().(*[]byte); ok {
		return *buf
	}
	return make([]byte, 32<<10)
}

func (b *bufferPool) Put(buf []byte) { b.p.Put(&buf) }

// rewrite turns the agent's request into the one sent upstream: the checked
// destination, no proxy or upgrade headers, and the credential if any.
func rewrite(out *http.Request, x *exchange) {
	out.URL.Scheme, out.URL.Host = x.req.Scheme, hostPort(x.req)
	if x.req.Path != "" {
		// The path decided on (the Decider may have put it in normal
		// form), not the agent's spelling of it.
		if p, err := url.PathUnescape(x.req.Path); err == nil {
			out.URL.Path, out.URL.RawPath = p, x.req.Path
		}
	}
	out.URL.User, out.URL.Opaque, out.URL.Fragment, out.URL.RawFragment = nil, "", "", ""
	out.Host = ""
	for k := range out.Header {
		if strings.HasPrefix(k, "Proxy-") {
			delete(out.Header, k)
		}
	}
	// An upgraded connection would escape per-request decisions.
	out.Header.Del("Upgrade")
	out.Header.Del("Connection")
	if c := x.cred; c != nil {
		out.Header.Del("Authorization")
		// Let the transport negotiate and decode compression, so that the
		// response can be checked for the secret.
		out.Header.Del("Accept-Encoding")
		out.Header[c.header] = []string{c.value}
	}
}

// responseWriter notes the status and body bytes sent to the agent and masks
// secrets in every header block it writes (informational, final, trailers
// set before the final flush).
type responseWriter struct {
	http.ResponseWriter
	mask   *masker
	status int
	n      int64
}

func (w *responseWriter) WriteHeader(code int) {
	if w.mask != nil {
		w.mask.header(w.Header())
	}
	if w.status == 0 && code >= 200 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *responseWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	n, err := w.ResponseWriter.Write(b)
	w.n += int64(n)
	return n, err
}

// Unwrap lets http.ResponseController reach the server's writer (Flush).
func (w *responseWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// countingReader counts the bytes read through it and keeps the first error
// other than io.EOF.
type countingReader struct {
	rc  io.ReadCloser
	n   atomic.Int64 // read by the handler while the transport sends the body
	err error        // only read for response bodies, in the handler's goroutine
}

func (r *countingReader) Read(p []byte) (int, error) {
	n, err := r.rc.Read(p)
	r.n.Add(int64(n))
	if err != nil && err != io.EOF && r.err == nil {
		r.err = err
	}
	return n, err
}

func (r *countingReader) Close() error { return r.rc.Close() }
