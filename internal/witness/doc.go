// Package witness implements both ends of the C2SP tlog-witness protocol
// (https://c2sp.org/tlog-witness) for ward's audit log.
//
// A log's own signature on a checkpoint shows that the log said it; it
// cannot show that the log said the same to everyone, or that it never
// rewrote history and re-signed it. A witness can: it remembers the latest
// checkpoint it cosigned for each log it follows, and cosigns a new one only
// when given a consistency proof that the new tree extends the old. A
// checkpoint carrying enough independent cosignatures therefore cannot be
// part of a fork or a rollback, unless the witnesses collude with the log.
//
// [Witness] is the witness side. One ward node can witness another: it
// follows the logs named in its configuration (origin and note verifier
// key), verifies each submitted checkpoint's signature and consistency proof
// and answers with a timestamped Ed25519 cosignature in the
// c2sp.org/tlog-cosignature format (cosignature/v1). Its state is one small
// file, replaced atomically and fsync'd before a cosignature is returned, so
// a restart never lets it cosign two inconsistent checkpoints.
//
// [Publisher] is the log side. After each new checkpoint of the local audit
// log it submits the checkpoint, with a consistency proof from the size each
// witness last cosigned, to every witness of a witness policy (the Sigsum
// policy format, parsed by github.com/transparency-dev/formats/witness),
// checks every cosignature it gets back, and publishes the checkpoint with
// the cosignatures appended only once the policy's quorum is met. Until
// then the previously published checkpoint stays published: a node whose
// witnesses are unreachable keeps logging durably, but what it shows the
// world stops advancing, which is exactly what an operator who requires
// cosignatures asked for.
//
// Several ward nodes on one store witness each other without HTTP: each
// node's [Witness] follows the other nodes' logs (internal/server,
// cosign.go), takes the consistency proofs they publish with their heads
// in the store and stores its cosignatures there. [VerifySystem] checks
// a whole system at once: every node's log in full against keys the
// caller holds (several per log across a rotation of its key), every
// cosignature against the cosigning node's key, the quorum, and that
// each log extends its published head and every checkpoint cosigned of
// it; it names a missing, tampered, forked or rolled-back log, bad
// evidence in the store and nodes the caller does not know.
//
// The protocol, in short: the log POSTs to <witness URL>/add-checkpoint
//
//	old <size the witness last cosigned, or 0>
//	<consistency proof hash, base64>   (zero or more lines)
//	<empty line>
//	<the signed checkpoint note>
//
// and the witness answers 200 with its cosignature lines, 409 Conflict with
// body "<size>\n" (Content-Type text/x.tlog.size) when the old size is not
// the one it holds, 404 for an unknown log, 403 when no trusted log key
// signed the checkpoint, 400 for a malformed request and 422 when the
// consistency proof does not verify or the root differs at an equal size.
package witness
