// Package audit is ward's tamper-evident, durable audit log.
//
// Every decision, token, session and tool result that ward observes is
// appended as an [Event]. The log is a Merkle tree in the sense of RFC 6962:
// entry i is leaf i, and on its own cadence (see "Durability") ward signs a
// checkpoint (a C2SP tlog-checkpoint, https://c2sp.org/tlog-checkpoint)
// over the tree size and root hash of every entry it acknowledged so far.
// A third party holding ward's note verifier key can check the
// files with independent libraries (for example
// github.com/transparency-dev/merkle and golang.org/x/mod/sumdb/note) and
// without trusting any ward code.
//
// # Durability
//
// [Log.Append] returns only after the event is durable, with its index:
// one fdatasync per batch, and no signature. Concurrent appenders are
// batched by a single writer goroutine (group commit). The writer writes
// the batch's entries to the entries file (not synced) and appends one
// record holding them to the journal (see "The journal"), which it
// fdatasyncs alone; then it acknowledges the batch. The entries are then
// durable, readable ([Log.Read], [Log.Size]) and sequenced: nothing can
// change their indexes or their place in the tree.
//
// Signed checkpoints are produced from durable entries on their own
// cadence, as transparency logs such as Tessera do: a checkpointer signs a
// checkpoint over every acknowledged entry every checkpointInterval
// (200 ms) while there are new ones, as soon as checkpointEvery (4,096)
// entries were acknowledged since the last one, and when [Log.Sync] asks
// for one. It writes the checkpoint's record to the checkpoints file,
// syncs the entries, then the checkpoints, then makes the head name it
// (see "The head file"), and only then publishes it: [Log.Checkpoint]
// returns it, [Log.Prove] and [Log.ConsistencyProof] prove against it, and
// [Log.NextCheckpoint] returns it to those waiting for one (a witness
// publisher, a node publishing its heads for the others). A published
// checkpoint is always durable, and covers only acknowledged entries. It
// lags the latest acknowledged entry by up to the cadence: [Log.Sync]
// returns one covering every entry acknowledged before the call, and a
// caller that hands out an index for others to prove at once (ward's
// receipts, a forensic bundle, a verification pass, the seal of an ended
// session) calls it first; [Log.Prove] waits for one covering its event.
// [Log.Close] signs and makes durable the last one.
//
// The head is never ahead of what is durable in the files; what is durable
// only in the journal, Open writes back into the files first and signs a
// checkpoint over it. A batch too large for the journal's free space is
// written the way the checkpointer writes (entries, a checkpoint signed
// over them, and head, each synced) before it is acknowledged, and the
// journal starts again. An acknowledged event is never dropped, and no
// byte of the log is ever deleted.
//
// [Log.AppendUnsynced] returns earlier: once the event's batch is written
// to the journal (write(2), not yet synced). The event then has its index
// and place in the tree, and a crash of the process (kill -9, a panic)
// no longer loses it: the kernel keeps what was written and Open replays
// the journal. A crash of the machine before the sync may lose it. The
// writer syncs it with the next batch that must be durable (one
// fdatasync covers every record written before it) or, if none comes,
// after [Config.UnsyncedDelay] (2 ms); [Pending.Durable] waits for that.
// It is readable, and covered by checkpoints, only once durable. If that
// sync fails, the log fails closed until it is reopened, and the event is
// not cut back (its index was handed out).
//
// ward's gateway appends a call's decision with AppendUnsynced and
// forwards the call as soon as it returns; it appends the result with
// Append, and answers the agent only once both the result and the
// decision are durable. The guarantee is thus:
//
//   - a call is forwarded only once its decision is written to the
//     journal: a crash of ward's process at any point after that keeps
//     the decision;
//   - the agent gets a call's result (or an error about it) only once
//     the call's decision and result are both durable (fdatasync'd).
//     What the upstream sends during the call that ward passes on
//     without recording it (progress, log messages) may reach the agent
//     before; what ward records durably first (a server's sampling or
//     elicitation request) makes the decision durable with it;
//   - a crash of the whole machine (power, kernel) within a few
//     milliseconds of a forward, before the decision's sync, may lose the
//     decision of a call whose result the agent never received. That
//     window is the unsynced delay plus one sync (longer only while a slow
//     disk or a starved machine holds the writer up), and it is the
//     one thing this gives up against syncing every decision before
//     forwarding.
//
// At one call at a time the decision then shares the result's sync: a
// call waits for one sync instead of two. Concurrent calls share batches
// either way. Denials, escalations and every other event are appended
// durably before ward acts on them.
//
// # Faults
//
// If a write or a sync fails (a full disk, an I/O error), every append of
// the batch returns the error and the log fails closed: later appends are
// refused at once with that error, without touching the disk, and
// [Log.Err] returns it. The log recovers by itself: after 100 ms, then
// after twice as long each time up to 5 s, the writer tries again. It
// first makes the head name the last acknowledged checkpoint again (if a
// head write failed, its slot may be on disk), then moves what the failed
// batch wrote to the entries or checkpoints file aside (to
// "entries.fault-<unix nanos>", "checkpoints.fault-<unix nanos>": copied
// and synced, then cut), cuts the index back, and writes an "audit.fault"
// event: the first error, since when, how many appends were refused, how
// many attempts it took and where the failed bytes are kept. When that
// write succeeds the log accepts appends again and Err is nil. Nothing in
// a failed batch was acknowledged (the head did not name it), so nothing
// acknowledged is ever cut. [Log.Writable] also says when the log's file
// system has less than [MinFreeBytes] free, so that a readiness check sees
// a full disk before an append fails on it.
//
// The journal's record is the batch's durability. The checkpointer's
// writes that fail are tried again on its next tick, and meanwhile
// appends go on (their entries are durable in the journal) while
// [Log.Sync] returns the error; the journal bounds how far checkpoints can
// fall behind, for a batch that does not fit in it is written through the
// files under a checkpoint, and fails if that fails. A sync of the
// checkpointer's that fails makes the log fail closed until it is
// reopened (the kernel may have dropped the pages, so a later sync's
// success would not prove them), and Open then replays the journal.
//
// # Opening: from the head
//
// [Open] does not read the whole log. The head remembers, with the latest
// durable checkpoint, the tree's frontier (its compact range: the roots of
// the perfect subtrees of the tree the checkpoint signs, which the
// checkpoint's root commits to), where the entries and the checkpoint's
// record end, and up to which entry the index is durable. Open checks:
//
//   - that the frontier roots to the signed root, and that the checkpoint's
//     record is where the head says;
//   - the entries after the index's durable part: hashed onto the index's
//     frontier at that point, they must give the head's frontier, which
//     authenticates both; their index records are rewritten (a crash may
//     have lost them);
//   - checkpoint records after the head's (a batch whose head write a
//     crash lost): validly signed and matching the entries, they are
//     adopted, as a full verification does;
//   - the anchors, with consistency proofs from the index checked against
//     the authenticated roots, and the last entry of the index's durable
//     part, with an inclusion proof from its offsets and hashes.
//
// It reads a few kilobytes, however long the log; the time and memory it
// takes do not grow with it. What it did not read, [Log.Verify] checks:
// a server runs it in the background after start. It verifies the files as
// VerifyLog does, and checks the index against the entries, with its
// memory bounded (it follows chains in a scratch session table on disk).
// If it finds damage, the log appends an "audit.damage" event saying what,
// fails closed ([Log.Err] and Append return the damage) and leaves the
// file "damaged" in its directory; the next Open then verifies the whole
// log, as below, and refuses it (or, when only the index was damaged,
// rebuilds the index). ward audit verify ([VerifyLog]) always verifies
// everything.
//
// Open verifies the whole log when the head is of version 1 or missing or
// unusable, when the index is missing or does not check out, when the
// "damaged" file is there, with [Config.AllowUnverified], or when any of
// the checks above fails (and then says what is wrong, as below). It then
// rebuilds the index. A full verification reads the checkpoints and the
// entries once, side by side, and keeps the chains of the sessions in
// memory.
//
// # Opening: crash or rollback
//
// Verifying, Open checks the files as [VerifyLog] does, against the head
// and against [Config.Anchors] (for ward, the checkpoint its witnesses
// cosigned, DATA/witness/published). Two situations look alike in the
// files and are told apart by the head:
//
//   - A crash: entries after the latest checkpoint that no checkpoint ever
//     covered (a batch whose checkpoint was not yet durable), or a torn
//     last record. The log's latest checkpoint is at or beyond the head.
//     Nothing there was acknowledged. The tail is moved to
//     "entries.tail-<unix nanos>" and "checkpoints.tail-<unix nanos>" in
//     the log directory (copied and synced before the log is cut back), and
//     an "audit.recover" event records how many entries and bytes were
//     moved and where ([Log.Notice] says it in one line). Entries past the
//     checkpoint are not adopted, because doing so would let anyone who can
//     write the file get forged entries signed. Starting from the head,
//     Open does the same.
//   - A rollback: the log is behind a checkpoint ward made durable (the
//     head) or published (an anchor): its checkpoints file was cut back or
//     replaced by an older copy, or both of its files were, or the log was
//     deleted. Open refuses with an error wrapping [ErrRollback] that says
//     what the log holds and what the checkpoint covers, and changes
//     nothing. Ways out: restore the log's directory from a backup that
//     holds at least what the head covers (Open then accepts it), or open
//     with [Config.AllowUnverified], which keeps every entry, sets the
//     evidence aside and records the override in the log.
//
// A log whose head is missing is refused the same way unless it never held
// an entry (a crash while it was created): a log written before the head
// file existed has none, and so does one whose history was rolled back
// together with it. AllowUnverified adopts it.
//
// A log that fails verification otherwise is refused with an error
// wrapping [ErrTampered] or [ErrCorrupt], unless [Config.AllowUnverified];
// see that field for what happens then.
//
// # Files
//
// A log directory (mode 0700) holds:
//
//	entries       the entries, append-only
//	checkpoints   every signed checkpoint, one record per checkpoint the checkpointer made, append-only
//	lock          held with flock(2) while a Log is open
//	index/        derived from the entries (see "The index"); may be deleted
//	damaged       left by a verification pass that found damage
//	entries.tail-N, checkpoints.tail-N              unacknowledged tails moved aside by Open
//	entries.fault-N, checkpoints.fault-N            what batches that failed to write left
//	entries.unverified-N, checkpoints.unverified-N  evidence set aside by an AllowUnverified open
//
// and next to it, outside it, the head file (by default the directory's
// path plus ".head"; ward uses DATA/audit.head) and the journal (the head
// file's path plus ".journal").
//
// Both data files are sequences of frames. A frame is a 4-byte big-endian
// unsigned length n (1 <= n <= [MaxEntryBytes] for entries, <= [MaxCheckpointBytes]
// for checkpoints) followed by n bytes.
//
// An entry frame's bytes are the JSON encoding of one [Event], exactly as
// encoding/json marshals the Event struct (fields in declaration order, no
// insignificant whitespace); no other encoding of the same event is
// accepted. The leaf hash of entry i is SHA-256(0x00 || bytes), per RFC
// 6962 section 2.1; the bytes hashed are the frame's bytes, so a verifier
// needs no JSON canonicalisation. The "index" member of entry i is i.
//
// Entries of schema version 2 ("v":2, what this package writes) chain the
// events of each session: an event with a "session" carries "seq", its
// position among the session's events from 1, and, when seq > 1, "prev",
// the log index of the session's previous event. Events without a session
// carry neither. Version 1 entries (no chain) are still read.
//
// A session is sealed by an event of type "audit.seal" in its chain,
// written by the log itself ([Log.Seal]; ward seals a session when it
// ends): a statement, covered by the same checkpoint, that the chain
// ending at it holds every event of the session logged so far. A later
// event of a sealed session (the result of a call in flight when it
// ended) is followed, in the same batch, by a new seal, so under every
// checkpoint a sealed session's chain ends in a seal. Types beginning with
// "audit." are the log's own; [Log.Append] refuses them. They are
// "audit.seal", "audit.recover" and "audit.unverified-open" (see "Opening"),
// "audit.fault" (see "Faults") and "audit.damage" (what a verification
// pass found, its data {"error": "…"}).
//
// For example, entries 7 to 9 of a log where session "k3v" sealed:
//
//	{"v":2,"index":7,"seq":4,"prev":5,"time":"…","type":"session.end","actor":"alice","session":"k3v",…}
//	{"v":2,"index":8,"time":"…","type":"policy.reload","actor":"ward","data":{"policies":3}}
//	{"v":2,"index":9,"seq":5,"prev":7,"time":"…","type":"audit.seal","actor":"ward","session":"k3v"}
//
// A checkpoint frame's bytes are a signed note (golang.org/x/mod/sumdb/note)
// whose text is a C2SP tlog-checkpoint with no extension lines:
//
//	<origin>\n
//	<tree size, decimal, no leading zeroes>\n
//	<root hash, standard base64>\n
//
// followed by a blank line and the log's signature line
// ("— <key name> <base64(key hash || Ed25519 signature)>\n"), alone, or,
// during a rotation of the log's key (keys.go), the old key's and then
// the new key's, both named by the origin. The
// root of the empty tree is SHA-256 of the empty string. A fresh log
// starts with a checkpoint of size 0. Tree sizes never decrease from one
// record to the next. The last complete record is the latest checkpoint.
//
// Every value has one encoding, and a reader accepts no other: base64 is
// standard, padded and canonical (no set padding bits, no line breaks),
// decimals have no sign or leading zero, a note has no signature line
// twice and no second signature by one key, and the log's signatures
// (those named by its origin) come first, at least one of them by a key
// the reader trusts. Checkpoints from outside the files (anchors, bundles) may
// carry witness cosignatures after it, each in its one encoding. A note
// verifier key ("name+hash+base64", DATA/keys/audit.pub) is read only with
// its hash as eight lower-case hex digits ([ParseVerifierKey]).
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
// head over them and compare it with the checkpoint's root hash; then check
// that the log extends the checkpoints you hold from elsewhere (its root at
// their size is theirs).
//
// # The head file
//
// The head file holds the latest checkpoint the log made durable, with
// the tree's frontier, in two slots of 8192 bytes written in turn, so that
// a torn write leaves the other intact. A slot is:
//
//	"ward-audit-head2"    16 bytes
//	write number          8 bytes, big-endian; 1, 2, 3, …; write k goes to slot k mod 2
//	n                     4 bytes, big-endian
//	checkpoint            n bytes, a checkpoint record exactly as in the checkpoints file
//	entries end           8 bytes, big-endian: where the entries it covers end in the entries file
//	checkpoints end       8 bytes, big-endian: where its record ends in the checkpoints file
//	indexed               8 bytes, big-endian: the index is durable for entries [0, indexed)
//	k                     1 byte: the number of hashes, popcount(tree size)
//	hashes                32·k bytes: the compact range [0, tree size), left to right
//	SHA-256               32 bytes, of everything above
//	zeros                 to the end of the slot
//
// The head is the valid slot with the higher write number; a slot whose
// sum does not match was torn and is ignored; a slot whose checkpoint is
// not signed by the log's key, whose hashes do not root to its
// checkpoint's root, whose indexed exceeds its tree size, or whose write
// number is in the other slot's place, makes the file unusable. The
// version 1 file (two slots of 4096 bytes, "ward-audit-head\n", the same
// fields up to the checkpoint) is still read; the next write replaces it.
// It is written with fdatasync after the entries and checkpoints files are
// synced (by the checkpointer, on its cadence), and
// lives outside the log's directory so that restoring or replacing that
// directory (both files consistently) does not restore it. It is a file
// rather than a row in ward's SQLite store because it must be durable
// before an append is acknowledged (one fdatasync of a page costs less
// than a database commit), because this package needs no store, and
// because an offline verifier reads it without one. [VerifyLog] checks
// that the entries and the record are where it says.
//
// # The journal
//
// The journal is a file of 4 MiB, allocated with zeros when it is created,
// written from offset 0 on, one record per batch:
//
//	"wjr2"               4 bytes
//	n                    4 bytes, big-endian: the length of what follows, up to the MAC
//	start                8 bytes, big-endian: the tree size before the batch
//	end                  8 bytes, big-endian: the tree size after it
//	entries start        8 bytes, big-endian: where its entries begin in the entries file
//	m                    4 bytes, big-endian: m = n − 28
//	entries              m bytes: the batch's entry frames, exactly as in the entries file
//	HMAC-SHA256          32 bytes, of everything above, with the journal's key
//
// The journal's key is the SHA-256 of "ward-audit-journal-key/v1", a NUL
// byte, and the log key's signature of "ward-audit-journal-key/v1" (no
// newline: no note, so no checkpoint, has that text, and the signature is
// written nowhere). Only the holder of the signing key can derive it, so
// whoever can write the journal without that key cannot make a record
// Open replays and then signs a checkpoint over, as when every record
// carried a signed checkpoint. The signer must be deterministic (Ed25519
// is); Open refuses one that is not.
//
// Records of version 1 ("wjr1", written before checkpoints had their own
// cadence) are still replayed: after the entries, c (4 bytes, big-endian)
// and the checkpoint signed at end (c bytes), then the SHA-256 of
// everything above in place of the MAC; the checkpoint authenticates them.
//
// A record extends the one before it: its start is that one's end, its
// entries start where that one's end. When the next record would not fit,
// the batch is written through the files and the head, and the next record
// goes to offset 0 (records of the earlier lap after it do not extend it).
// A cleanly closed log's head covers everything and its first record's
// magic is zeroed.
//
// Open reads the head, then the records from offset 0: those the head
// covers by their headers only, then each record that extends the head,
// whole. Such a record must match its MAC (a version 1 record its sum, and
// its checkpoint must be validly signed by the log's key at its end and
// give the root of its entries hashed onto the head's frontier), and each
// entry's index field must be its position. Open writes their entries
// where the records say, syncs them, signs a checkpoint over them all and
// appends it to the checkpoints file after the valid records already there
// (a torn record is moved aside, as below), syncs it, and goes on as usual:
// the checkpoint is adopted like any record after the head's. A record
// that does not check out ends the replay; nothing after it is adopted. So
// what is durable is the head, the files up to it and the journal's
// records extending it, and an acknowledged batch is in one of them. ward
// audit verify reads the files only: on a running log, or one that crashed
// and was not reopened, the batches no checkpoint in the file covers yet
// are a tail.
//
// # The index
//
// The directory "index" is derived from the entries; Open rebuilds it when
// it is missing (verifying the whole log first). It holds
//
//	offsets       8 bytes per entry, big-endian: where entry i ends in the entries file
//	hashes        32 bytes per node of every perfect subtree, in post-order
//	sessions.<k>  the session table, generation k
//
// [Log.Read] and [Log.Prove] find entries and audit paths through it, so
// the open log keeps no state per entry or per session in memory, and
// check what they find (the frame, its index field, the proof against the
// checkpoint): a damaged index is an error wrapping [ErrCorrupt], never a
// wrong event or a false proof. In post-order the node at level l with
// index i (covering leaves [i·2^l, (i+1)·2^l)) is node number
// 2m − popcount(m) + l, m = (i+1)·2^l − 1 being its last leaf; a tree of
// n leaves has 2n − popcount(n) nodes.
//
// The session table maps each session to its latest event's log index,
// seq and whether it is a seal (what the next event's seq and prev need).
// Generation k is an open-addressed hash table of 2^(14+k) home slots plus
// 64 overflow slots, after a 32-byte header ("ward-audit-sess\n" and k,
// 8 bytes big-endian); a new generation, twice as large, is made when a
// new session finds no free slot within 64 of its home in the newest. A
// slot is 32 bytes:
//
//	key    16 bytes  the first 16 bytes of SHA-256(session); its last 8, big-endian, modulo 2^(14+k), are its home
//	crc    4 bytes   CRC-32C of key, last and seq
//	last   6 bytes   big-endian log index of the latest event
//	seq    6 bytes   big-endian; top bit: the latest event is a seal; the rest its seq
//
// An all-zero slot is free; a slot whose CRC does not match is skipped.
//
// The writer appends offsets and hashes before it writes a batch's
// entries and updates the session table after the head names the batch;
// it does not sync them. A background syncer does, every second or every
// 32,768 entries, and the next head says so (indexed); if a sync fails,
// indexed stops moving until the log is reopened (the kernel may have
// dropped the pages; a later sync's success would not prove them).
//
// # Forensic bundles
//
// A [Bundle] (format "ward-audit-bundle/v2") is JSON:
//
//	{
//	  "format": "ward-audit-bundle/v2",
//	  "origin": "<the log's origin, the name of its key>",
//	  "log_key": "<note verifier key; informative: verifiers pin their own>",
//	  "receipt_key": "<PEM public key of receipts, or empty>",
//	  "checkpoint": "<one signed checkpoint, possibly cosigned>",
//	  "sessions": ["<the session exported>", "<sessions delegated from it>", …],
//	  "events": [{"index": N, "entry": "<base64 of the entry's exact bytes>",
//	              "proof": "<C2SP tlog-proof of entry N under the checkpoint>"}, …]
//	}
//
// It holds every event, under the checkpoint, of every session it lists,
// in ascending index order, each once. A tlog-proof is
//
//	c2sp.org/tlog-proof@v1\n
//	index <N>\n
//	<hash, standard base64>\n      (the RFC 6962 audit path, at most 64 lines)
//	\n
//	<the checkpoint>
//
// (an "extra <base64>" line after the header is valid C2SP but not in a
// ward bundle). [VerifyBundleWith] reads the JSON strictly (one value, no
// duplicate or unknown members, names matched case-sensitively, valid
// UTF-8) and checks, against a key the caller pins: the origin is the key's
// name and log_key, if present, is that key; the checkpoint is signed by
// it; every proof names its event's index, ends with the same checkpoint
// and proves inclusion; every event belongs to a listed session; and each
// session's events form its chain from seq 1 with no gap (a gap is named:
// the next event's seq and prev give the missing events' numbers and the
// log index of the last of them) and end in its seal. A session without
// its seal under the checkpoint (still open then) is not proven complete
// and is refused unless [BundleCheck.AllowUnsealed].
//
// # Limits of local evidence
//
// Signed checkpoints make alterations of the files detectable, and the
// checkpoint history narrows where an alteration is: entries up to the
// largest checkpoint that still matches are intact, and the first altered
// or removed entry lies below the smallest that does not. A verifier that
// holds older checkpoints, or a copy of the checkpoints file, narrows it
// further (VerifyConfig.Anchors). When the checkpoints themselves were
// re-signed, only such outside checkpoints can say which entry went.
//
// The head defeats rolling back the log's two files, together or one at a
// time, but it is in the same data directory: whoever can rewrite the whole
// directory (head included) and holds no witness can roll everything back
// consistently. Witnesses, which cosign only consistent extensions of what
// they cosigned before, and checkpoints a verifier keeps (ward audit verify
// --checkpoint) defeat that; so does a key verifiers pin instead of
// reading it from the directory. Nothing local defeats the holder of the
// signing key. The head lags the latest acknowledged batch by up to the
// checkpointer's interval: whoever can delete the journal and cut the
// files back to the head rolls back that much unnoticed by the head alone
// (as whoever could cut an unsynced tail could before); witnesses that
// cosigned a later checkpoint notice.
//
// The checkpoint history localizes an alteration to the entries between
// two checkpoints. Checkpoints come on the log's cadence, not one per
// batch, so under load those spans hold the entries of up to
// checkpointInterval; a session's chain (seq and prev) still names the
// event missing from it.
//
// Starting from the head trusts what the head's signed checkpoint
// authenticates and nothing else read from the log's directory, but it
// leaves the older entries unread until the verification pass has run: a
// node serves calls during that window (seconds for a small log, about
// half a minute per million events on two cores), and damage to those
// entries is found, recorded and makes the log fail closed at its end,
// not at start. The index is not authenticated: a damaged session table
// could make the writer give an event a wrong seq or prev, which
// verification then reports as a broken chain; the pass compares the
// index with the entries.
//
// A seal proves completeness up to itself: if late events and their new
// seal are cut from a bundle together, it still proves the session complete
// up to the earlier seal. The bundle's report names the index of the seal
// it ends at; compare it with a fresh export from the log.
package audit
