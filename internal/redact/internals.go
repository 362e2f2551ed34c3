package redact

import "regexp"

// What a database driver or the network stack writes into an error about
// where it was connecting: the database's user and name, its address, a
// socket's two ends. An error ward sends an agent or a client says what
// failed, not where ward's store lives.
var internals = []struct {
	re   *regexp.Regexp
	with string
}{
	// pgx: failed to connect to `user=U database=D`: HOST:PORT (HOST): …
	{regexp.MustCompile("failed to connect to `[^`]*`(: [^ ]+ \\([^)]*\\))?"), "failed to connect to the database"},
	// Go's net: dial tcp 10.0.0.5:5432: …, read tcp A->B: …, lookup host on …
	{regexp.MustCompile(`\b(dial|read|write) (tcp[46]?|udp[46]?|unix|unixgram|unixpacket) (\[[^\] ]*\]|[^ :\[]*)(:[0-9]+)?(->(\[[^\] ]*\]|[^ :\[]*)(:[0-9]+)?)?:`), "$1 $2:"},
	{regexp.MustCompile(`\blookup [^ ]+( on [^ ]+)?:`), "lookup:"},
	// A DSN or URL with credentials or a database name.
	{regexp.MustCompile(`\b(postgres|postgresql)://[^ "']+`), "$1://…"},
	{regexp.MustCompile(`\b(host|hostaddr|port|user|password|dbname|database)=[^ ` + "`" + `"']+`), "$1=…"},
}

// Internals returns msg without the details of ward's own infrastructure
// that errors from the store's driver and the network carry (the
// database's address, user and name; sockets' addresses), for messages
// that leave the node. The full error belongs in the node's log.
func Internals(msg string) string {
	for _, x := range internals {
		msg = x.re.ReplaceAllString(msg, x.with)
	}
	return msg
}
