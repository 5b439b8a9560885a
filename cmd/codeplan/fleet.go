package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/codeplan-dev/codeplan/remote"
)

// probeFleet asks every server of an OpenAI-compatible fleet for its models
// before a run, so that a wrong URL or key fails at once. A server that does
// not answer yet is only a warning while another one does: it stays in the
// rotation and takes work when it comes up.
func probeFleet(client *remote.Client) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var failed []string
	up := 0
	for _, p := range client.ProbeAll(ctx) {
		if p.Err != nil {
			log.Warn().Str("url", p.URL).Err(p.Err).Msg("server not reachable at start; it stays in the rotation")
			failed = append(failed, p.Err.Error())
			continue
		}
		up++
		log.Info().Strs("models", p.Models).Str("url", p.URL).Msg("server reachable")
	}
	if up == 0 {
		return fmt.Errorf("cannot reach any server: %s", strings.Join(failed, "; "))
	}
	return nil
}

// connFailuresOption maps --max-connection-failures to
// remote.Options.MaxConnFailures, where 0 means "default" and a negative
// value means "never give up".
func connFailuresOption(n int) int {
	if n <= 0 {
		return -1
	}
	return n
}
