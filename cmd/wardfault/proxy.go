package main

import (
	"net"
	"sync"
)

// dbProxy stands between a node and its database, on loopback, and cuts
// the node off on demand the way a network partition does: while cut,
// it accepts new connections but neither dials the database for them
// nor moves a byte on the connections it has; nothing is closed or
// refused, so the node sees its queries hang, not fail. When the cut is
// healed, the bytes held move on (as TCP retransmits after a partition).
type dbProxy struct {
	ln     net.Listener
	target string

	mu    sync.Mutex
	cut   bool
	heal  chan struct{} // closed when the cut is healed; guarded by mu
	conns []net.Conn    // guarded by mu
}

// startProxy listens on a loopback port and forwards to target.
func startProxy(target string) (*dbProxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &dbProxy{ln: ln, target: target, heal: make(chan struct{})}
	go p.serve()
	return p, nil
}

// addr is the proxy's loopback address.
func (p *dbProxy) addr() string { return p.ln.Addr().String() }

func (p *dbProxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		go p.forward(c)
	}
}

// gate waits while the proxy is cut.
func (p *dbProxy) gate() {
	p.mu.Lock()
	cut, heal := p.cut, p.heal
	p.mu.Unlock()
	if cut {
		<-heal
	}
}

func (p *dbProxy) forward(c net.Conn) {
	p.gate()
	d, err := net.Dial("tcp", p.target)
	if err != nil {
		c.Close()
		return
	}
	p.mu.Lock()
	p.conns = append(p.conns, c, d)
	p.mu.Unlock()
	go p.pipe(d, c)
	p.pipe(c, d)
}

// pipe copies from src to dst, holding each chunk while the proxy is
// cut.
func (p *dbProxy) pipe(dst, src net.Conn) {
	defer dst.Close()
	defer src.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			p.gate()
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// setCut cuts the node off (true) or heals the cut (false).
func (p *dbProxy) setCut(cut bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if cut == p.cut {
		return
	}
	p.cut = cut
	if cut {
		p.heal = make(chan struct{})
	} else {
		close(p.heal)
	}
}

// close stops listening and closes every connection.
func (p *dbProxy) close() {
	p.ln.Close()
	p.setCut(false)
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
}
