package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/ward-dev/ward/internal/console"
)

// consoleConfig configures the operator console's single sign-on; local
// accounts need none (ward console user add). ${VAR} expands from ward's
// environment in the secret.
//
//	console:
//	  oidc:
//	    issuer: https://accounts.example.org
//	    client_id: ward-console
//	    client_secret: ${WARD_OIDC_SECRET}
//	    redirect_url: https://ward.example.org/console/api/oidc/callback   # default: from the host the browser used
//	    roles: {"olga@example.org": admin, "vic@example.org": viewer}      # by verified email
type consoleConfig struct {
	OIDC *struct {
		Issuer       string            `yaml:"issuer"`
		ClientID     string            `yaml:"client_id"`
		ClientSecret string            `yaml:"client_secret"`
		RedirectURL  string            `yaml:"redirect_url"`
		Roles        map[string]string `yaml:"roles"`
	} `yaml:"oidc"`
}

// oidc returns the console's OIDC configuration, or nil.
func (c *consoleConfig) oidc() (*console.OIDCConfig, error) {
	if c == nil || c.OIDC == nil {
		return nil, nil
	}
	o := c.OIDC
	if o.Issuer == "" || o.ClientID == "" {
		return nil, errors.New("console.oidc: issuer and client_id are required")
	}
	out := &console.OIDCConfig{Issuer: o.Issuer, ClientID: o.ClientID, ClientSecret: os.ExpandEnv(o.ClientSecret),
		RedirectURL: o.RedirectURL, Roles: map[string]console.Role{}}
	for email, r := range o.Roles {
		role, err := console.ParseRole(r)
		if err != nil {
			return nil, fmt.Errorf("console.oidc.roles.%s: %v", email, err)
		}
		out.Roles[email] = role
	}
	if len(out.Roles) == 0 {
		return nil, errors.New("console.oidc.roles: give at least one verified email its role (viewer, approver or admin)")
	}
	return out, nil
}
