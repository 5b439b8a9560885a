package main

import "github.com/urfave/cli/v2"

func chatCommand() *cli.Command {
	return &cli.Command{Name: "chat", Usage: "(not implemented yet)"}
}
