package main

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/ward-dev/ward/internal/api"
	"github.com/ward-dev/ward/internal/keyring"
)

// keyKinds are what `ward keys rotate --kind` takes: the key ring's kinds
// and log, the audit log's checkpoint key (the node says whether it can).
var keyKinds = []string{"ca", "jwt", "grant", "receipt", "log"}

// keysList is ward keys list: the trust domain's keys, their state and
// until when a retiring key is still trusted (admins).
func keysList(args []string, stdout io.Writer) error {
	fs := flags("keys list")
	out := outputFlag(fs)
	c, err := parseOperator(fs, args, out)
	if err != nil {
		return err
	}
	var vs []keyring.View
	if done, err := c.call("GET", "/v1/keys", nil, &vs, *out, stdout); done || err != nil {
		return err
	}
	var rows [][]string
	for _, v := range vs {
		notAfter := "-"
		if v.NotAfter != nil {
			notAfter = v.NotAfter.UTC().Format(time.RFC3339)
		}
		rows = append(rows, []string{string(v.Kind), v.KID, string(v.State), v.Created.UTC().Format(time.RFC3339), notAfter})
	}
	table(stdout, "KIND\tKID\tSTATE\tCREATED\tNOT AFTER", rows)
	return nil
}

// keysRotate is ward keys rotate --kind K: a new active key of the kind,
// in force at once on the node asked and, on several nodes, on the others
// within their freshness bound; the old key stays trusted until what it
// signed has expired.
func keysRotate(args []string, stdout io.Writer) error {
	fs := flags("keys rotate")
	out := outputFlag(fs)
	kind := fs.String("kind", "", "the `kind` of key to rotate: "+strings.Join(keyKinds, ", "))
	c, err := parseOperator(fs, args, out)
	if err != nil {
		return err
	}
	if !slices.Contains(keyKinds, *kind) {
		return usagef("--kind: want one of %s", strings.Join(keyKinds, ", "))
	}
	var v keyring.View
	if done, err := c.call("POST", "/v1/keys/rotate", api.RotateRequest{Kind: *kind}, &v, *out, stdout); done || err != nil {
		return err
	}
	if v.Kind == "log" {
		fmt.Fprintf(stdout, "log key rotation: %s signs from now on; until the old key retires (by itself: on a node alone after the next checkpoint, on several once every other node cosigned one) checkpoints carry both keys' signatures, and the old key keeps verifying what it signed (DATA/keys/audit.retired)\n", v.KID)
		return nil
	}
	fmt.Fprintf(stdout, "%s key rotated: %s signs from now on; the previous key is trusted until what it signed has expired (ward keys list)\n", v.Kind, v.KID)
	return nil
}

// keysRetire is ward keys retire --kid KID: a retiring key retired at once,
// ahead of its not-after (its material leaked); what it signed is refused
// from then on.
func keysRetire(args []string, stdout io.Writer) error {
	fs := flags("keys retire")
	out := outputFlag(fs)
	kid := fs.String("kid", "", "the `kid` of a retiring key (ward keys list)")
	c, err := parseOperator(fs, args, out)
	if err != nil {
		return err
	}
	if *kid == "" {
		return usagef("--kid: the key ID of a retiring key (ward keys list)")
	}
	var v keyring.View
	if done, err := c.call("POST", "/v1/keys/retire", api.RetireRequest{KID: *kid}, &v, *out, stdout); done || err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s key %s retired: what it signed is refused from now on\n", v.Kind, v.KID)
	return nil
}
