package main

import (
	"fmt"
	"io"
	"net/url"
	"strings"
	"time"

	"github.com/ward-dev/ward/internal/approval"
)

func approvalsList(args []string, stdout io.Writer) error {
	fs := flags("approvals list")
	out := outputFlag(fs)
	state := fs.String("state", "pending", "pending, approved, denied, expired, used or all")
	c, err := parseOperator(fs, args, out)
	if err != nil {
		return err
	}
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

// approvalsOne is ward approvals show|approve|deny ID.
func approvalsOne(sub string) func([]string, io.Writer) error {
	return func(args []string, stdout io.Writer) error {
		fs := flags("approvals " + sub)
		out := outputFlag(fs)
		var reason *string
		if sub != "show" {
			reason = fs.String("reason", "", "why you "+sub+" (recorded)")
		}
		c, err := parseOperator(fs, args, out, "the request's ID")
		if err != nil {
			return err
		}
		arg := fs.Arg(0)
		id := url.PathEscape(arg)
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
}
