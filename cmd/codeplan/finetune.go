package main

import "github.com/urfave/cli/v2"

func finetuneCommand() *cli.Command {
	return &cli.Command{Name: "finetune", Usage: "(not implemented yet)"}
}
