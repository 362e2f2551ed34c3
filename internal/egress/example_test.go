package egress_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"

	"github.com/ward-dev/ward/internal/egress"
)

// A proxy that lets session s1 reach one upstream and reports each request.
func Example() {
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "hello")
	}))
	defer upstream.Close()
	records := make(chan string, 2)

	p, err := egress.New(egress.Config{
		Auth: egress.AuthenticatorFunc(func(ctx context.Context, user, password string) (*egress.Identity, error) {
			if user != "s1" || password != "token" { // use a constant-time comparison in real code
				return nil, errors.New("unknown session")
			}
			return &egress.Identity{Session: "s1", Agent: "reporter"}, nil
		}),
		Decider: egress.DeciderFunc(func(ctx context.Context, id *egress.Identity, r *egress.Request) (egress.Verdict, error) {
			return egress.Verdict{Allow: r.Host == "127.0.0.1", Reason: "allowlist"}, nil
		}),
		Recorder: egress.RecorderFunc(func(ctx context.Context, id *egress.Identity, r *egress.Request, rec egress.Record) error {
			records <- fmt.Sprintf("%s %s %s %s %s status=%d down=%d", rec.Phase, rec.Decision, id.Session, r.Method, r.Path, rec.Status, rec.BytesDown)
			return nil
		}),
		// The upstream is on loopback, which the default (PublicAddr) refuses.
		AllowAddr: func(a netip.Addr) bool { return a.IsLoopback() },
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Println(err)
		return
	}
	go p.Serve(ln)
	defer p.Close()

	// What the sandbox's HTTP_PROXY says.
	proxyURL := &url.URL{Scheme: "http", User: url.UserPassword("s1", "token"), Host: ln.Addr().String()}
	client := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(proxyURL)}}
	resp, err := client.Get(upstream.URL + "/greeting")
	if err != nil {
		fmt.Println(err)
		return
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	fmt.Println(resp.StatusCode, string(body))
	fmt.Println(<-records)
	fmt.Println(<-records)
	// Output:
	// 200 hello
	// forward allow s1 GET /greeting status=0 down=0
	// done allow s1 GET /greeting status=200 down=5
}
