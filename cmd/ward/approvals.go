package main

import (
	"fmt"
	"io"
	"net/url"
	"strings"
	"time"

	"github.com/ward-dev/ward/internal/approval"
)

func cmdApprovals(args []string, stdout io.Writer) error {
	sub, args, err := subcommand(args, "approvals", "list", "show", "approve", "deny")
	if err != nil {
		return err
	}
	fs := flags("approvals " + sub)
	out := outputFlag(fs)
	state := fs.String("state", "pending", "list: pending, approved, denied, expired, used or all")
	reason := fs.String("reason", "", "why you approve or deny (recorded)")
	c, err := parseOperator(fs, args, out)
	if err != nil {
		return err
	}
	if sub == "list" {
		q := url.Values{}
		if *state != "all" {
			q.Set("state", *state)
		}
		var rs []approval.Request
		if done, err := c.call("GET", "/v1/approvals?"+q.Encode(), nil, &rs, *out, stdout); done || err != nil {
			return err
		}
		var rows [][]string
		for _, r := range rs {
			rows = append(rows, []string{r.ID, r.State, r.Agent, r.Name, fmt.Sprintf("%d of %s", r.Requirement.Quorum, strings.Join(r.Requirement.Groups, ",")),
				fmt.Sprintf("%d", len(r.Votes)), r.Expires.Format(time.RFC3339)})
		}
		table(stdout, "ID\tSTATE\tAGENT\tCALL\tNEEDS\tVOTES\tEXPIRES", rows)
		return nil
	}
	if fs.NArg() != 1 {
		return usagef("usage: ward approvals %s ID", sub)
	}
	id := url.PathEscape(fs.Arg(0))
	var r approval.Request
	if sub == "show" {
		err = c.do("GET", "/v1/approvals/"+id, nil, &r)
	} else {
		err = c.do("POST", "/v1/approvals/"+id+"/"+sub, map[string]string{"reason": *reason}, &r)
	}
	if err != nil {
		return err
	}
	if *out == "json" {
		return printJSON(stdout, r)
	}
	fmt.Fprintf(stdout, "request   %s (%s)\nagent     %s, session %s (sponsor %s)\ncall      %s %s %s\nwhy       %s\nneeds     %d of %s\nvotes     %d\nexpires   %s\n",
		r.ID, r.State, r.Agent, r.Session, r.Sponsor, r.Method, r.Name, r.Arguments, strings.Join(r.Reasons, "; "),
		r.Requirement.Quorum, strings.Join(r.Requirement.Groups, ", "), len(r.Votes), r.Expires.Format(time.RFC3339))
	return nil
}
