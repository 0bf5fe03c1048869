// Command sbxrun-compose-load loads, checks and plans a compose project
// for sbxrun: a compose.Request as JSON on standard input, a
// compose.Response as JSON on standard output. It is a program of its own
// so that sbxrun does not link compose-go's loader, whose JSON Schema
// package costs every sbxrun command about 10 ms to initialise.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"

	"github.com/sbxrun/sbxrun/compose"
	"github.com/sbxrun/sbxrun/compose/loader"
)

func main() {
	defer func() {
		if r := recover(); r != nil {
			_ = json.NewEncoder(os.Stdout).Encode(compose.Response{Error: fmt.Sprintf("internal error loading the compose files: %v; please report it", r)})
			os.Exit(1)
		}
	}()
	var req compose.Request
	if err := json.NewDecoder(os.Stdin).Decode(&req); err != nil {
		fmt.Fprintf(os.Stderr, "%s reads a request from sbxrun on its standard input (%v): it is not meant to be run by hand\n", compose.LoaderBinary, err)
		os.Exit(2)
	}
	l, err := loader.LoadPlan(context.Background(), req)
	if err := json.NewEncoder(os.Stdout).Encode(compose.ResponseFor(l, err)); err != nil {
		os.Exit(1)
	}
}
