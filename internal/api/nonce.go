package api

import "net/http"

// askNonce answers a proof without the node's DPoP nonce (RFC 9449 §8):
// the challenge names error use_dpop_nonce and DPoP-Nonce carries a fresh
// nonce, with which the client makes a new proof and sends the request
// again.
func (s *Server) askNonce(w http.ResponseWriter) {
	w.Header().Set("WWW-Authenticate", `DPoP error="use_dpop_nonce", error_description="send the request again with a proof that carries the DPoP-Nonce", algs="ES256"`)
	w.Header().Set("DPoP-Nonce", s.cfg.Proofs.Nonce())
	w.Header().Add("Access-Control-Expose-Headers", "DPoP-Nonce, WWW-Authenticate")
}
