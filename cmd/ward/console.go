package main

import (
	"fmt"
	"io"
	"path/filepath"

	"github.com/ward-dev/ward/internal/console"
	"github.com/ward-dev/ward/internal/server"
)

// consoleUserAdd is ward console user add NAME --role R: it writes the
// account to DATA/console/users.json (read by a running node at the next
// login, no restart) and prints the generated password once.
func consoleUserAdd(args []string, stdout io.Writer) error {
	fs := flags("console user")
	out := outputFlag(fs)
	data := fs.String("data", server.DefaultData, "the node's data `directory`")
	roleFlag := fs.String("role", "", "viewer, approver or admin")
	if err := parseOut(fs, args, out); err != nil {
		return err
	}
	if err := wantArgs(fs, "add", "the user NAME"); err != nil {
		return err
	}
	if fs.Arg(0) != "add" {
		return usagef("unknown action %q: ward console user add NAME --role R", fs.Arg(0))
	}
	name := fs.Arg(1)
	role, err := console.ParseRole(*roleFlag)
	if err != nil {
		return usagef("--role: %v", err)
	}
	if err := holdsNode(*data); err != nil {
		return err
	}
	pw, err := console.AddUser(filepath.Join(*data, filepath.FromSlash(console.UsersFile)), name, role)
	if err != nil {
		return err
	}
	if *out == "json" {
		return printJSON(stdout, map[string]string{"user": name, "role": string(role), "password": pw})
	}
	fmt.Fprintf(stdout, "console user %s (%s); password (shown once): %s\nlog in at https://HOST:PORT/console/\n", name, role, pw)
	return nil
}
