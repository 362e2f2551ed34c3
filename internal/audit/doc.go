// Package audit is ward's tamper-evident, durable audit log.
//
// Every decision, token, session and tool result that ward observes is
// appended as an [Event]. The log is a Merkle tree in the sense of RFC 6962:
// entry i is leaf i, and after every write ward signs a checkpoint (a C2SP
// tlog-checkpoint, https://c2sp.org/tlog-checkpoint) over the new tree size
// and root hash. A third party holding ward's note verifier key can check the
// files with independent libraries (for example
// github.com/transparency-dev/merkle and golang.org/x/mod/sumdb/note) and
// without trusting any ward code.
//
// # Durability
//
// [Log.Append] returns only after the event's bytes are fsync'd and a signed
// checkpoint covering them is fsync'd. Concurrent appenders are batched by a
// single writer goroutine (group commit): one write and one fsync of the
// entries file, then one signed checkpoint and one fsync of the checkpoints
// file, per batch. If any write or fsync fails, the failing batch and every
// later append return an error (the log fails closed) until it is reopened.
// An acknowledged event is never dropped.
//
// On [Open] the files are verified as [Verify] does. Bytes after the last
// entry covered by the latest checkpoint were never acknowledged (a crash
// mid-batch); they are truncated, and an event of type "audit.recover"
// records how many bytes were dropped. Entries past the checkpoint are not
// adopted, because doing so would let anyone who can write the file get
// forged entries signed. A log that fails verification is refused unless
// [Config.AllowUnverified] is set; see that field for what happens then.
//
// # Files
//
// A log directory (mode 0700) holds:
//
//	entries       the entries, append-only
//	checkpoints   every signed checkpoint, one record per committed batch, append-only
//	lock          held with flock(2) while a Log is open
//
// Both data files are sequences of frames. A frame is a 4-byte big-endian
// unsigned length n (1 <= n <= [MaxEntryBytes] for entries, <= [MaxCheckpointBytes]
// for checkpoints) followed by n bytes.
//
// An entry frame's bytes are the JSON encoding of one [Event], exactly as
// encoding/json marshals the Event struct (fields in declaration order, no
// insignificant whitespace). The leaf hash of entry i is
// SHA-256(0x00 || bytes), per RFC 6962 section 2.1; the bytes hashed are the
// frame's bytes, so a verifier needs no JSON canonicalisation. The "index"
// member of entry i is i.
//
// A checkpoint frame's bytes are a signed note (golang.org/x/mod/sumdb/note)
// whose text is a C2SP tlog-checkpoint with no extension lines:
//
//	<origin>\n
//	<tree size, decimal>\n
//	<root hash, standard base64>\n
//
// followed by a blank line and one or more signature lines
// ("— <key name> <base64(key hash || Ed25519 signature)>\n"). The root of the
// empty tree is SHA-256 of the empty string. A fresh log starts with a
// checkpoint of size 0. Tree sizes never decrease from one record to the next.
// The last complete record is the latest checkpoint; a final record cut short
// by a crash was never acknowledged and is ignored.
//
// For example, the latest checkpoint of a log with origin "ward.local/audit"
// and two entries reads:
//
//	ward.local/audit
//	2
//	<44 characters: base64 of the 32-byte RFC 6962 root of entries 0 and 1>
//
//	— ward.local/audit <base64 of 4-byte key hash and 64-byte signature>
//
// To verify a log by hand: check the latest checkpoint's signature and origin,
// hash the first <tree size> entry frames as leaves, compute the RFC 6962 tree
// head over them and compare it with the checkpoint's root hash.
//
// # Limits of local evidence
//
// Signed checkpoints make alterations of the files detectable, and the
// checkpoint history narrows where an alteration is. They cannot, on their
// own, detect someone who holds the signing key, or who removes the newest
// entries together with the newest checkpoint records. That is the job of
// witnesses and exported proofs, which build on the leaf hashes this format
// lets anyone recompute.
package audit
