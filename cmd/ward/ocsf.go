package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"

	"github.com/ward-dev/ward/internal/atomicfile"
	"github.com/ward-dev/ward/internal/audit"
	"github.com/ward-dev/ward/internal/ocsf"
)

// exportOCSF writes events (the session's, or all) as OCSF JSON, one
// event a line, to file (atomically, mode 0600) or, if file is "" or "-",
// to stdout. The events were verified against the log's checkpoint first.
func exportOCSF(events []audit.Event, session, file string, stdout io.Writer) error {
	p := ocsf.Product{Name: "ward", Vendor: "ward", Version: version}
	write := func(w io.Writer) error {
		bw := bufio.NewWriter(w)
		enc := json.NewEncoder(bw)
		for _, e := range events {
			if session != "" && e.Session != session {
				continue
			}
			if err := enc.Encode(ocsf.Map(e, p)); err != nil {
				return err
			}
		}
		return bw.Flush()
	}
	if file == "" || file == "-" {
		return write(stdout)
	}
	var buf bytes.Buffer
	if err := write(&buf); err != nil {
		return err
	}
	return atomicfile.Write(file, buf.Bytes(), 0o600)
}
