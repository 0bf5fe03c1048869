package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/containerd/console"

	"github.com/sbxrun/sbxrun/images"
	"github.com/sbxrun/sbxrun/runtime"
)

// loginOptions are the inputs of login.
type loginOptions struct {
	// Registry is the registry host.
	Registry string
	// Username; asked for on a terminal when empty.
	Username string
	// PasswordStdin reads the password from Stdin (CI secrets never reach
	// argv); without it the password is asked for on a terminal.
	PasswordStdin bool
	// Registry options: hosts directories, insecure registries, config dir.
	RegistryOptions images.RegistryOptions
	// Stdin, Stdout and Stderr default to the process's.
	Stdin          io.Reader
	Stdout, Stderr io.Writer
}

// login checks credentials against a registry and stores them in the
// Docker config (or its credential helper).
func login(ctx context.Context, g *runtime.Global, o loginOptions) error {
	runtime.QuietRegistryLogs(g)
	if o.Stdin == nil {
		o.Stdin = os.Stdin
	}
	if o.Stdout == nil {
		o.Stdout = os.Stdout
	}
	if o.Stderr == nil {
		o.Stderr = os.Stderr
	}
	host, err := images.NormalizeRegistry(o.Registry)
	if err != nil {
		return failf("%v", err)
	}
	in := bufio.NewReader(o.Stdin)
	user, password := o.Username, ""
	if o.PasswordStdin {
		if user == "" {
			return failf("%v", errors.New("--password-stdin needs the user name as -u USER"))
		}
		b, err := io.ReadAll(in)
		if err != nil {
			return failf("%v", fmt.Errorf("reading the password from stdin: %w", err))
		}
		password = strings.TrimRight(string(b), "\r\n")
	} else {
		f, ok := o.Stdin.(*os.File)
		if !ok || !isTerminal(f) {
			return failf("%v", errors.New("stdin is not a terminal: give the password on stdin with --password-stdin (sbxrun login -u USER --password-stdin [REGISTRY] < file)"))
		}
		if user == "" {
			if o.Registry == "" {
				fmt.Fprintf(o.Stderr, "Log in to Docker Hub (%s); name a registry to log in elsewhere: sbxrun login REGISTRY\n", host)
			}
			fmt.Fprint(o.Stderr, "Username: ")
			line, _ := in.ReadString('\n')
			user = strings.TrimSpace(line)
		}
		if password, err = readPassword(f, o.Stderr); err != nil {
			return failf("%v", err)
		}
	}
	if password == "" {
		return failf("%v", errors.New("empty password: give it on stdin with --password-stdin"))
	}
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	file, err := images.Login(ctx, images.LoginOptions{Registry: host, Username: user, Password: password, RegistryOptions: o.RegistryOptions})
	if err != nil {
		return failf("%v", err)
	}
	fmt.Fprintf(o.Stdout, "Login Succeeded (credentials for %s stored via %s)\n", host, file)
	return nil
}

// readPassword reads a line from the terminal f without echo.
func readPassword(f *os.File, prompt io.Writer) (string, error) {
	con, err := console.ConsoleFromFile(f)
	if err != nil {
		return "", fmt.Errorf("reading the password: %w", err)
	}
	fmt.Fprint(prompt, "Password: ")
	if err := con.DisableEcho(); err != nil {
		return "", fmt.Errorf("reading the password: %w", err)
	}
	// Ctrl-C at the prompt must not leave the terminal without echo.
	sigc := make(chan os.Signal, 1)
	signal.Notify(sigc, os.Interrupt, syscall.SIGTERM)
	stop := make(chan struct{})
	go func() {
		select {
		case <-sigc:
			_ = con.Reset()
			fmt.Fprintln(prompt)
			os.Exit(130)
		case <-stop:
		}
	}()
	defer func() {
		close(stop)
		signal.Stop(sigc)
		_ = con.Reset()
		fmt.Fprintln(prompt)
	}()
	line, err := bufio.NewReader(f).ReadString('\n')
	if err != nil && line == "" {
		return "", fmt.Errorf("reading the password: %w", err)
	}
	return strings.TrimRight(line, "\r\n"), nil
}

// logout removes the stored credentials of a registry.
func logout(registry string, ro images.RegistryOptions, out io.Writer) error {
	host, err := images.NormalizeRegistry(registry)
	if err != nil {
		return failf("%v", err)
	}
	had, err := images.Logout(host, ro)
	if err != nil {
		return failf("%v", err)
	}
	if !had {
		fmt.Fprintf(out, "Not logged in to %s\n", host)
		return nil
	}
	fmt.Fprintf(out, "Removed login credentials for %s\n", host)
	return nil
}
