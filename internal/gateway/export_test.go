package gateway

// SameCatalog reports whether a and b hold one catalog of tools (shared,
// not two copies).
func SameCatalog(a, b *Session) bool {
	a.catMu.Lock()
	ca := a.cats[namedIndex(KindTool)]
	a.catMu.Unlock()
	b.catMu.Lock()
	cb := b.cats[namedIndex(KindTool)]
	b.catMu.Unlock()
	return ca != nil && ca == cb
}

// Catalogs reports how many catalogs g's sessions hold.
func Catalogs(g *Gateway) int { return g.cats.size() }
