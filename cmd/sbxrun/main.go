// Command sbxrun runs development sandboxes as containerd tasks.
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/sbxrun/sbxrun/runtime"
)

func main() {
	defer func() {
		if r := recover(); r != nil {
			fmt.Fprintf(os.Stderr, "sbxrun: internal error: %v; please report it with the output of --debug\n", r)
			os.Exit(runtime.ExitFailed)
		}
	}()
	app := newApp()
	err := app.RunContext(context.Background(), rewriteArgs(app, os.Args))
	code := runtime.ExitCode(err)
	if msg := errorLine(err); msg != "" {
		fmt.Fprintln(os.Stderr, "sbxrun: "+msg)
	}
	os.Exit(code)
}
