// Package interop tests ward's witness protocol against the reference
// C2SP tlog-witness implementation, github.com/transparency-dev/witness: its
// witness cosigns ward's audit checkpoints through ward's publisher, and its
// client drives ward's witness. It is a separate module so that the
// reference implementation's dependencies stay out of ward's build.
package interop
