// verify.js checks an audit event's inclusion proof in the browser, with
// nothing from the server but bytes:
//
//   1. the log key (C2SP note verifier key "NAME+HASH+BASE64(0x01||PUB)"):
//      its key hash must be SHA-256(NAME "\n" 0x01||PUB)[:4];
//   2. the checkpoint (a C2SP signed note): a signature line of that key
//      must verify with Ed25519 (WebCrypto) over the note's text, and its
//      origin line must be the key's name;
//   3. the event: its leaf hash SHA-256(0x00 || entry) is computed here
//      from the entry's bytes, and the RFC 6962 audit path must lead from
//      it to the checkpoint's root hash (RFC 9162 section 2.1.3.2).
//
// verifyProof returns {ok, index, size, root, event} or throws an Error
// saying which step failed.

const enc = new TextEncoder();

export function b64decode(s) {
  const bin = atob(s);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

function hex(b) {
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

function concat(...parts) {
  const n = parts.reduce((a, p) => a + p.length, 0);
  const out = new Uint8Array(n);
  let off = 0;
  for (const p of parts) { out.set(p, off); off += p.length; }
  return out;
}

function equal(a, b) {
  if (a.length !== b.length) return false;
  let d = 0;
  for (let i = 0; i < a.length; i++) d |= a[i] ^ b[i];
  return d === 0;
}

async function sha256(b) {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", b));
}

// parseKey reads a note verifier key.
export async function parseKey(vkey) {
  // The key's base64 may itself hold "+": split at the first two only.
  const v = vkey.trim();
  const i = v.indexOf("+"), j = v.indexOf("+", i + 1);
  if (i <= 0 || j < 0) throw new Error("log key: not NAME+HASH+KEY");
  const name = v.slice(0, i), hashHex = v.slice(i + 1, j), keyB64 = v.slice(j + 1);
  if (!/^[0-9a-f]{8}$/.test(hashHex)) throw new Error("log key: bad key hash");
  const data = b64decode(keyB64);
  if (data.length !== 33 || data[0] !== 1) throw new Error("log key: not an Ed25519 key");
  const h = await sha256(concat(enc.encode(name + "\n"), data));
  if (hex(h.slice(0, 4)) !== hashHex) throw new Error("log key: key hash does not match the key");
  return { name, hash: h.slice(0, 4), pub: data.slice(1) };
}

// verifyNote checks a signed note with key and returns its text.
export async function verifyNote(noteText, key) {
  const split = noteText.lastIndexOf("\n\n");
  if (split < 0 || !noteText.endsWith("\n")) throw new Error("checkpoint: not a signed note");
  const text = noteText.slice(0, split + 1);
  const sigs = noteText.slice(split + 2).split("\n").filter((l) => l !== "");
  if (!crypto.subtle) throw new Error("this browser has no WebCrypto (it needs a secure context)");
  const pub = await crypto.subtle.importKey("raw", key.pub, { name: "Ed25519" }, false, ["verify"]);
  for (const line of sigs) {
    const m = /^\u2014 (\S+) (\S+)$/.exec(line);
    if (!m) throw new Error("checkpoint: malformed signature line");
    if (m[1] !== key.name) continue;
    const sig = b64decode(m[2]);
    if (sig.length !== 68 || !equal(sig.slice(0, 4), key.hash)) continue;
    if (await crypto.subtle.verify({ name: "Ed25519" }, pub, sig.slice(4), enc.encode(text))) return text;
    throw new Error("checkpoint: the log key's signature does not verify");
  }
  throw new Error("checkpoint: not signed by the log key");
}

// parseCheckpoint reads origin, size and root from a checkpoint's text.
export function parseCheckpoint(text) {
  const lines = text.split("\n");
  if (lines.length < 4 || !/^[0-9]+$/.test(lines[1])) throw new Error("checkpoint: malformed body");
  const root = b64decode(lines[2]);
  if (root.length !== 32) throw new Error("checkpoint: root hash is not 32 bytes");
  return { origin: lines[0], size: BigInt(lines[1]), root };
}

// rootFromInclusion computes the root an audit path leads to (RFC 9162
// 2.1.3.2), or throws if the path cannot be one for index in size.
export async function rootFromInclusion(index, size, leaf, path) {
  if (index >= size) throw new Error("proof: index beyond the tree");
  let fn = index, sn = size - 1n, r = leaf;
  for (const p of path) {
    if (sn === 0n) throw new Error("proof: audit path too long");
    if ((fn & 1n) === 1n || fn === sn) {
      r = await sha256(concat(Uint8Array.of(1), p, r));
      if ((fn & 1n) === 0n) {
        while ((fn & 1n) === 0n && fn !== 0n) { fn >>= 1n; sn >>= 1n; }
      }
    } else {
      r = await sha256(concat(Uint8Array.of(1), r, p));
    }
    fn >>= 1n; sn >>= 1n;
  }
  if (sn !== 0n) throw new Error("proof: audit path too short");
  return r;
}

// verifyProof checks proof (as /console/api/proof/N serves it: entry as
// base64 of the exact bytes hashed, hashes base64) against the log key.
export async function verifyProof(proof, logKey) {
  const key = await parseKey(logKey);
  const text = await verifyNote(proof.checkpoint, key);
  const cp = parseCheckpoint(text);
  if (cp.origin !== key.name) throw new Error("checkpoint: origin " + cp.origin + " is not the log key's " + key.name);
  const index = BigInt(proof.index);
  if (BigInt(proof.tree_size) !== cp.size) throw new Error("proof: made for another tree size than the checkpoint's");
  const entry = b64decode(proof.entry_b64);
  const leaf = await sha256(concat(Uint8Array.of(0), entry));
  const path = proof.hashes.map(b64decode);
  const root = await rootFromInclusion(index, cp.size, leaf, path);
  if (!equal(root, cp.root)) throw new Error("proof: the event's audit path does not lead to the checkpoint's root");
  const event = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(entry));
  if (BigInt(event.index) !== index) throw new Error("proof: the entry is event " + event.index + ", not " + proof.index);
  return { ok: true, index: Number(index), size: Number(cp.size), root: hex(root), event };
}
