package main

import "github.com/urfave/cli/v2"

func mergeCommand() *cli.Command {
	return &cli.Command{Name: "merge", Usage: "(not implemented yet)"}
}
