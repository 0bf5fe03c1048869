// Command sbxrun runs development sandboxes as containerd tasks.
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/sbxrun/sbxrun/runtime"
)

func main() {
	app := newApp()
	err := app.RunContext(context.Background(), rewriteArgs(app, os.Args))
	code := runtime.ExitCode(err)
	if msg := errorLine(err); msg != "" {
		fmt.Fprintln(os.Stderr, "sbxrun: "+msg)
	}
	os.Exit(code)
}
