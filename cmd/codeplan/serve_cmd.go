package main

import (
	"context"
	"errors"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/codeplan-dev/codeplan/llama/engine"
	"github.com/codeplan-dev/codeplan/planner"
	"github.com/codeplan-dev/codeplan/server"
)

func serveCommand() *cli.Command {
	flags := append(modelFlags(4), loraFlags()...)
	flags = append(flags,
		&cli.StringFlag{Name: "host", Value: "127.0.0.1", Usage: "address to listen on (0.0.0.0 = every interface)"},
		&cli.IntFlag{Name: "port", Value: 8080, Usage: "TCP port to listen on (0 = any free port)"},
		&cli.StringFlag{Name: "alias", Usage: "model `ID` reported to clients (default: the model file's base name)"},
		&cli.StringFlag{Name: "mode", Value: string(planner.CodePlan), Usage: "answer mode when a request names none: direct, nlplan, codeplan or auto (the mode the adapter or model was fine-tuned in)"},
		&cli.StringFlag{Name: "format", Value: Auto, Usage: formatUsage},
		&cli.IntFlag{Name: "max-plan-tokens", Value: server.DefaultMaxPlanTokens, Usage: "default limit of the plan (requests: max_plan_tokens)"},
		&cli.IntFlag{Name: "max-tokens", Value: server.DefaultMaxTokens, Usage: "default limit of the answer (requests: max_tokens)"},
		&cli.Float64Flag{Name: "temperature", Value: 0, Usage: "temperature when a request gives none (0 = greedy)"},
		&cli.StringFlag{Name: "api-key", EnvVars: []string{"CODEPLAN_API_KEY"}, Usage: "require \"Authorization: Bearer `KEY`\" on /v1/ routes (needed for a --host other than loopback)"},
		&cli.BoolFlag{Name: "insecure-no-auth", Usage: "allow a --host other than loopback without --api-key: anyone who reaches the port may use the model"},
		&cli.DurationFlag{Name: "body-timeout", Value: server.DefaultBodyTimeout, Usage: "limit for receiving one request body (slow senders are cut off with 408)"},
		&cli.IntFlag{Name: "queue", Value: 64, Usage: "requests that may wait for a slot; more get 429"},
		&cli.DurationFlag{Name: "timeout", Value: server.DefaultTimeout, Usage: "limit of one request, queueing included"},
		&cli.StringFlag{Name: "max-body", Value: "1MiB", Usage: "largest request body (e.g. 512KiB, 4MiB)"},
		&cli.DurationFlag{Name: "grace", Value: 30 * time.Second, Usage: "on SIGINT/SIGTERM, how long running requests may finish before they are cancelled"},
	)
	return &cli.Command{
		Name:      "serve",
		Usage:     "an OpenAI-compatible HTTP server whose answers are plan-then-answer generations",
		ArgsUsage: "MODEL.gguf",
		Description: `Serves POST /v1/chat/completions (streaming too), POST /v1/completions,
GET /v1/models and GET /health. Each chat request may choose its mode with the
extra body field "mode" (direct, nlplan, codeplan); the plan comes back in
choices[0].message.plan (streaming: delta.plan), the answer in content.`,
		Flags:  flags,
		Action: serve,
	}
}

func serve(c *cli.Context) error {
	mode, err := resolveMode(c, c.String("mode"))
	if err != nil {
		return err
	}
	format, err := resolveFormat(c, c.String("format"))
	if err != nil {
		return err
	}
	maxBody, err := server.ParseByteSize(c.String("max-body"))
	if err != nil {
		return usagef("--max-body: %v", err)
	}
	for _, name := range []string{"max-plan-tokens", "max-tokens", "parallel"} {
		if c.Int(name) <= 0 {
			return usagef("--%s must be positive, got %d", name, c.Int(name))
		}
	}
	if c.Int("queue") < 0 {
		return usagef("--queue must be >= 0, got %d", c.Int("queue"))
	}
	if t := c.Float64("temperature"); t < 0 || t > 2 {
		return usagef("--temperature %g is out of range 0..2", t)
	}
	if p := c.Int("port"); p < 0 || p > 65535 {
		return usagef("--port %d is out of range 0..65535", p)
	}
	if err := checkServeAuth(c); err != nil {
		return err
	}
	if c.Duration("body-timeout") <= 0 {
		return usagef("--body-timeout must be positive, got %s", c.Duration("body-timeout"))
	}

	// Listen before the model loads, so that a port in use is found in a
	// second, not after minutes of loading; connections made meanwhile wait
	// in the backlog.
	addr := net.JoinHostPort(c.String("host"), strconv.Itoa(c.Int("port")))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return usagef("--host/--port: cannot listen on %s: %v", addr, err)
	}
	defer ln.Close()

	l, err := openModel(c)
	if err != nil {
		return err
	}
	defer l.Close()
	parallel := max(1, c.Int("parallel"))
	eng, err := l.Engine(engine.Options{Parallel: parallel, QueueSize: parallel + c.Int("queue")})
	if err != nil {
		return err
	}
	chat := chatTemplater(l.Model)
	id := c.String("alias")
	if id == "" {
		id = strings.TrimSuffix(filepath.Base(l.Path), filepath.Ext(l.Path))
	}
	queue := c.Int("queue")
	if queue == 0 {
		queue = -1 // server.Config: negative = nobody waits
	}
	srv, err := server.New(server.Config{
		Engine:        eng,
		Chat:          chat,
		ModelID:       id,
		Mode:          mode,
		Format:        format,
		MaxPlanTokens: c.Int("max-plan-tokens"),
		MaxTokens:     c.Int("max-tokens"),
		Temperature:   c.Float64("temperature"),
		APIKey:        c.String("api-key"),
		Queue:         queue,
		Timeout:       c.Duration("timeout"),
		MaxBody:       maxBody,
		BodyTimeout:   c.Duration("body-timeout"),
		Log:           log,
	})
	if err != nil {
		return usageError{err}
	}

	// The first SIGINT or SIGTERM drains: no new requests, those running
	// get --grace to finish. A second one stops at once.
	handleSignals()
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	log.Info().Str("url", "http://"+ln.Addr().String()+"/v1").Str("model", id).Str("mode", string(mode)).
		Str("format", string(format)).Int("parallel", parallel).Int("queue", c.Int("queue")).
		Bool("auth", c.String("api-key") != "").Msg("serving")

	select {
	case err := <-served:
		return err
	case <-sigs:
	case <-c.Context.Done():
	}
	grace := c.Duration("grace")
	log.Info().Float64("grace_s", grace.Seconds()).Int("in_flight", srv.Load().Busy+srv.Load().Queued).Msg("shutting down (a second Ctrl-C stops at once)")
	sctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	var again atomic.Bool
	go func() {
		select {
		case <-sigs:
			again.Store(true)
			log.Warn().Msg("second signal: stopping now, cancelling the requests still running")
			cancel()
		case <-sctx.Done():
		}
	}()
	if err := srv.Shutdown(sctx); err != nil {
		switch {
		case errors.Is(err, context.Canceled):
		case errors.Is(err, context.DeadlineExceeded):
			log.Warn().Float64("grace_s", grace.Seconds()).Msg("grace period over: cancelled the requests still running")
		default:
			return err
		}
	}
	if err := <-served; err != nil {
		return err
	}
	if again.Load() {
		return interrupted("serve (requests cut short by a second signal)")
	}
	log.Info().Msg("stopped")
	return nil
}

// checkServeAuth refuses an empty --api-key (an unset shell variable would
// otherwise turn authentication off without a word) and a non-loopback
// --host without a key unless --insecure-no-auth says that is meant.
func checkServeAuth(c *cli.Context) error {
	key := c.String("api-key")
	if c.IsSet("api-key") && strings.TrimSpace(key) == "" {
		return usagef("--api-key (or CODEPLAN_API_KEY) is empty: give a key, or leave the flag out to serve loopback without one")
	}
	if key != "" || isLoopback(c.String("host")) {
		return nil
	}
	if !c.Bool("insecure-no-auth") {
		return usagef("--host %s accepts connections from other machines: set --api-key KEY, or pass --insecure-no-auth to serve without authentication", c.String("host"))
	}
	log.Warn().Str("host", c.String("host")).Msg("serving without authentication on a non-loopback address (--insecure-no-auth)")
	return nil
}

// isLoopback reports whether host only accepts connections from this
// machine: "localhost" or a loopback IP. Anything else, the empty host (all
// interfaces) and other names included, counts as reachable from outside.
func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(strings.Trim(host, "[]"))
	return ip != nil && ip.IsLoopback()
}
