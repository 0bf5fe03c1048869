package main

import (
	"github.com/urfave/cli/v2"

	"github.com/sbxrun/sbxrun/runtime"
)

type runOptionsResult struct{ opts *runtime.RunOptions }

// captureRun replaces run's action with one that records the options.
func captureRun(dst **runOptionsResult) cli.ActionFunc {
	return func(c *cli.Context) error {
		o, err := runOptions(c)
		if err != nil {
			return err
		}
		*dst = &runOptionsResult{opts: o}
		return nil
	}
}
