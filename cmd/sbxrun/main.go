// Command sbxrun runs development sandboxes as containerd tasks.
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/sbxrun/sbxrun/hooks"
	"github.com/sbxrun/sbxrun/runtime"
	"github.com/sbxrun/sbxrun/runtime/rootless"
)

func main() {
	defer func() {
		if r := recover(); r != nil {
			fmt.Fprintf(os.Stderr, "sbxrun: internal error: %v; please report it with the output of --debug\n", r)
			os.Exit(runtime.ExitFailed)
		}
	}()
	// The sbxrun binary is also the CDI hook its GPU specs run: nothing else
	// happens first in a hook.
	if args, ok := hooks.Invoked(os.Args); ok {
		os.Exit(serveHook(args))
	}
	// A non-root user with a rootless containerd continues inside its
	// namespaces (the process is replaced); rootless commands themselves
	// manage that daemon from outside, and doctor checks the host from there.
	if (len(os.Args) < 2 || os.Args[1] != "rootless") && !checksHost(os.Args) {
		if err := rootless.Enter(os.Args, runtime.ResolveCDISpecDirs); err != nil {
			fmt.Fprintln(os.Stderr, "sbxrun: "+err.Error())
			os.Exit(runtime.ExitFailed)
		}
	}
	app := newApp()
	err := app.RunContext(context.Background(), rewriteArgs(app, os.Args))
	code := runtime.ExitCode(err)
	if msg := errorLine(err); msg != "" {
		fmt.Fprintln(os.Stderr, "sbxrun: "+msg)
	}
	os.Exit(code)
}
